//! Argument grammars: attribute tokens in, typed and spanned policy arguments out.
//!
//! Every key is looked up in its policy's table, so unknown keys, duplicates and did-you-mean
//! come from one place. Values are checked here (literal kinds, durations, ratios, zero
//! counts); cross-argument and cross-policy rules live in `validate.rs`.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

use crate::errors::Errors;
use crate::literal;

/// The five policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    CircuitBreaker,
    Timeout,
    Bulkhead,
    Retry,
    Fallback,
}

impl Kind {
    pub(crate) const ALL: [Kind; 5] = [
        Kind::CircuitBreaker,
        Kind::Timeout,
        Kind::Bulkhead,
        Kind::Retry,
        Kind::Fallback,
    ];

    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Kind::CircuitBreaker => "circuit_breaker",
            Kind::Timeout => "timeout",
            Kind::Bulkhead => "bulkhead",
            Kind::Retry => "retry",
            Kind::Fallback => "fallback",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::CircuitBreaker => literal::BREAKER_KEYS,
            Kind::Timeout => literal::TIMEOUT_KEYS,
            Kind::Bulkhead => literal::BULKHEAD_KEYS,
            Kind::Retry => literal::RETRY_KEYS,
            Kind::Fallback => literal::FALLBACK_KEYS,
        }
    }
}

/// A value with the span of the tokens it came from.
#[derive(Clone)]
pub(crate) struct Sp<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// One `#[policy(...)]` after parsing.
#[derive(Clone)]
pub(crate) struct Policy {
    pub(crate) kind: Kind,
    /// The attribute's path, for errors about the attribute as a whole.
    pub(crate) span: Span,
    pub(crate) name: Option<Sp<String>>,
    pub(crate) krate: Option<Path>,
    pub(crate) args: Args,
}

#[derive(Clone)]
pub(crate) enum Args {
    Breaker(Box<BreakerArgs>),
    Timeout(TimeoutArgs),
    Bulkhead(BulkheadArgs),
    Retry(Box<RetryArgs>),
    Fallback(FallbackArgs),
}

#[derive(Clone, Default)]
pub(crate) struct BreakerArgs {
    pub(crate) threshold: Option<Sp<u32>>,
    pub(crate) window: Option<Sp<Duration>>,
    pub(crate) failure_rate: Option<Sp<f64>>,
    pub(crate) last: Option<Sp<u32>>,
    pub(crate) min_calls: Option<Sp<u32>>,
    pub(crate) cooldown: Option<Sp<Duration>>,
    pub(crate) max_cooldown: Option<Sp<Duration>>,
    pub(crate) half_open_calls: Option<Sp<u32>>,
    pub(crate) success_threshold: Option<Sp<u32>>,
    pub(crate) ramp: Option<Sp<Duration>>,
    pub(crate) slow_call: Option<Sp<Duration>>,
    pub(crate) failure: Option<Path>,
    pub(crate) critical: Option<Sp<bool>>,
}

#[derive(Clone)]
pub(crate) struct TimeoutArgs {
    /// `None` only after an error was reported.
    pub(crate) duration: Option<Sp<Duration>>,
}

#[derive(Clone, Default)]
pub(crate) struct BulkheadArgs {
    pub(crate) pool: Option<Sp<u32>>,
    pub(crate) queue: Option<Sp<u32>>,
    pub(crate) max_wait: Option<Sp<Duration>>,
}

#[derive(Clone, Default)]
pub(crate) struct RetryArgs {
    pub(crate) attempts: Option<Sp<u32>>,
    pub(crate) backoff: Option<Sp<Duration>>,
    pub(crate) strategy: Option<Sp<String>>,
    pub(crate) multiplier: Option<Sp<f64>>,
    pub(crate) max_backoff: Option<Sp<Duration>>,
    pub(crate) jitter: Option<Sp<String>>,
    pub(crate) max_duration: Option<Sp<Duration>>,
    pub(crate) when: Option<Path>,
}

#[derive(Clone)]
pub(crate) struct FallbackArgs {
    /// `None` only after an error was reported.
    pub(crate) handler: Option<Path>,
    /// `args = (a, b)`: which arguments the handler takes.
    pub(crate) args: Option<Vec<Ident>>,
    pub(crate) on: Option<Path>,
}

/// `key = value` or a bare value.
struct RawArg {
    key: Option<Ident>,
    value: Expr,
}

impl Parse for RawArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `crate` is a keyword; accept it as a key.
        if (input.peek(Ident) || input.peek(Token![crate]))
            && input.peek2(Token![=])
            && !input.peek2(Token![==])
        {
            let key = if input.peek(Token![crate]) {
                let tok: Token![crate] = input.parse()?;
                Ident::new("crate", tok.span)
            } else {
                input.parse()?
            };
            input.parse::<Token![=]>()?;
            let value = input.parse()?;
            Ok(RawArg {
                key: Some(key),
                value,
            })
        } else {
            Ok(RawArg {
                key: None,
                value: input.parse()?,
            })
        }
    }
}

/// Parses one attribute's arguments. Errors go to `errors`; the returned policy holds what
/// could be read.
pub(crate) fn parse(kind: Kind, span: Span, tokens: TokenStream, errors: &mut Errors) -> Policy {
    let mut policy = Policy {
        kind,
        span,
        name: None,
        krate: None,
        args: match kind {
            Kind::CircuitBreaker => Args::Breaker(Box::default()),
            Kind::Timeout => Args::Timeout(TimeoutArgs { duration: None }),
            Kind::Bulkhead => Args::Bulkhead(BulkheadArgs::default()),
            Kind::Retry => Args::Retry(Box::default()),
            Kind::Fallback => Args::Fallback(FallbackArgs {
                handler: None,
                args: None,
                on: None,
            }),
        },
    };
    let raw = match Punctuated::<RawArg, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(e);
            return policy;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for (index, arg) in raw.into_iter().enumerate() {
        let Some(key) = arg.key else {
            positional(&mut policy, index, arg.value, errors);
            continue;
        };
        let key_str = key.to_string();
        if !kind.keys().contains(&key_str.as_str()) {
            let hint = literal::did_you_mean(&key_str, kind.keys())
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            errors.push(syn::Error::new(
                key.span(),
                format!(
                    "unknown `{}` argument `{key_str}`; {hint}expected one of: {}",
                    kind.attr_name(),
                    kind.keys().join(", ")
                ),
            ));
            continue;
        }
        if seen.contains(&key_str) {
            errors.push(syn::Error::new(
                key.span(),
                format!("`{key_str}` set multiple times"),
            ));
            continue;
        }
        seen.push(key_str.clone());
        if let Err(e) = keyed(&mut policy, &key_str, &arg.value) {
            errors.push(e);
        }
    }
    match &policy.args {
        Args::Timeout(t)
            if t.duration.is_none()
                && !seen.iter().any(|k| k == "duration")
                && !errors.has_any() =>
        {
            errors.push(syn::Error::new(
                span,
                "`#[timeout]` needs a duration: write `#[timeout(\"200ms\")]`",
            ));
        }
        Args::Bulkhead(b) if b.pool.is_none() && !seen.iter().any(|k| k == "pool") => {
            errors.push(syn::Error::new(
                span,
                "`#[bulkhead]` needs a pool size: write `#[bulkhead(pool = 10)]`",
            ));
        }
        Args::Fallback(f) if f.handler.is_none() && !errors.has_any() => {
            errors.push(syn::Error::new(
                span,
                "`#[fallback]` needs a handler: write `#[fallback(handler_fn)]`",
            ));
        }
        _ => {}
    }
    policy
}

/// The `crate = ".."` override among an attribute's arguments, if it has a valid one.
pub(crate) fn declared_crate(tokens: TokenStream) -> Option<Path> {
    let raw = Punctuated::<RawArg, Token![,]>::parse_terminated
        .parse2(tokens)
        .ok()?;
    raw.into_iter().find_map(|arg| {
        if arg.key.as_ref().is_some_and(|k| k == "crate")
            && let Some(Lit::Str(s)) = lit(&arg.value)
        {
            syn::parse_str::<Path>(&s.value()).ok()
        } else {
            None
        }
    })
}

fn positional(policy: &mut Policy, index: usize, value: Expr, errors: &mut Errors) {
    let span = value.span();
    match (&mut policy.args, index) {
        (Args::Timeout(t), 0) => match duration(&value, false) {
            Ok(d) => t.duration = Some(d),
            Err(e) => errors.push(e),
        },
        (Args::Fallback(f), 0) => match value {
            Expr::Path(p) if p.qself.is_none() => f.handler = Some(p.path),
            _ => errors.push(syn::Error::new(
                span,
                "expected the path of an async fn handler, like `popular_items` or `Self::cached`",
            )),
        },
        _ => errors.push(syn::Error::new(
            span,
            format!(
                "unexpected value; `{}` takes `key = value` arguments: {}",
                policy.kind.attr_name(),
                policy.kind.keys().join(", ")
            ),
        )),
    }
}

fn keyed(policy: &mut Policy, key: &str, value: &Expr) -> syn::Result<()> {
    match key {
        "name" => {
            let s = string(value, "a name like \"payments\"")?;
            if s.value.is_empty() {
                return Err(syn::Error::new(s.span, "`name` may not be empty"));
            }
            policy.name = Some(s);
            return Ok(());
        }
        "crate" => {
            let s = string(value, "a crate path like \"::my_facade::resilient\"")?;
            policy.krate =
                Some(syn::parse_str::<Path>(&s.value).map_err(|_| {
                    syn::Error::new(s.span, format!("`{}` is not a path", s.value))
                })?);
            return Ok(());
        }
        _ => {}
    }
    match &mut policy.args {
        Args::Breaker(b) => match key {
            "threshold" => b.threshold = Some(count(value, key, 1)?),
            "window" => b.window = Some(duration(value, false)?),
            "failure_rate" => b.failure_rate = Some(ratio(value, key)?),
            "last" => b.last = Some(count(value, key, 1)?),
            "min_calls" => b.min_calls = Some(count(value, key, 1)?),
            "cooldown" => b.cooldown = Some(duration(value, false)?),
            "max_cooldown" => b.max_cooldown = Some(duration(value, false)?),
            "half_open_calls" => b.half_open_calls = Some(count(value, key, 1)?),
            "success_threshold" => b.success_threshold = Some(count(value, key, 1)?),
            "ramp" => b.ramp = Some(duration(value, false)?),
            "slow_call" => b.slow_call = Some(duration(value, false)?),
            "failure" => b.failure = Some(path(value, "failure")?),
            "critical" => b.critical = Some(boolean(value)?),
            _ => {}
        },
        Args::Timeout(t) => {
            if key == "duration" {
                t.duration = Some(duration(value, false)?);
            }
        }
        Args::Bulkhead(b) => match key {
            "pool" => b.pool = Some(count(value, key, 1)?),
            "queue" => b.queue = Some(count(value, key, 0)?),
            "max_wait" => b.max_wait = Some(duration(value, false)?),
            _ => {}
        },
        Args::Retry(r) => match key {
            "attempts" => r.attempts = Some(count(value, key, 1)?),
            "backoff" => r.backoff = Some(duration(value, true)?),
            "strategy" => r.strategy = Some(choice(value, &["exponential", "linear", "constant"])?),
            "multiplier" => {
                let m = float(value)?;
                if !(m.value.is_finite() && m.value >= 1.0) {
                    return Err(syn::Error::new(
                        m.span,
                        format!(
                            "expected a multiplier of at least 1.0, like 2.0; found {}",
                            m.value
                        ),
                    ));
                }
                r.multiplier = Some(m);
            }
            "max_backoff" => r.max_backoff = Some(duration(value, false)?),
            "jitter" => r.jitter = Some(choice(value, &["full", "equal", "none", "decorrelated"])?),
            "max_duration" => r.max_duration = Some(duration(value, false)?),
            "when" => r.when = Some(path(value, "when")?),
            _ => {}
        },
        Args::Fallback(f) => match key {
            "on" => f.on = Some(path(value, "on")?),
            "args" => f.args = Some(idents(value)?),
            _ => {}
        },
    }
    Ok(())
}

fn lit(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(g) => lit(&g.expr),
        _ => None,
    }
}

fn string(value: &Expr, expected: &str) -> syn::Result<Sp<String>> {
    match lit(value) {
        Some(Lit::Str(s)) => Ok(Sp {
            value: s.value(),
            span: s.span(),
        }),
        _ => Err(syn::Error::new(
            value.span(),
            format!("expected a string literal: {expected}"),
        )),
    }
}

fn duration(value: &Expr, zero_ok: bool) -> syn::Result<Sp<Duration>> {
    let s: &LitStr = match lit(value) {
        Some(Lit::Str(s)) => s,
        _ => {
            return Err(syn::Error::new(
                value.span(),
                "expected a duration string like \"200ms\", \"30s\" or \"1m30s\"",
            ));
        }
    };
    let d = literal::parse_duration(&s.value()).map_err(|m| syn::Error::new(s.span(), m))?;
    if d.is_zero() && !zero_ok {
        return Err(syn::Error::new(
            s.span(),
            "expected a duration longer than zero (only `backoff` may be \"0s\")",
        ));
    }
    Ok(Sp {
        value: d,
        span: s.span(),
    })
}

fn count(value: &Expr, key: &str, min: u32) -> syn::Result<Sp<u32>> {
    let why = match key {
        "pool" => " (a bulkhead without permits would reject every call)",
        "attempts" => " (the first call counts as an attempt)",
        _ => "",
    };
    let Some(Lit::Int(i)) = lit(value) else {
        return Err(syn::Error::new(
            value.span(),
            format!("`{key}` expects an integer literal of at least {min}, like `{key} = 10`"),
        ));
    };
    let n: u32 = i.base10_parse().map_err(|_| {
        syn::Error::new(
            i.span(),
            format!("`{key}` expects an integer of at least {min} that fits in u32"),
        )
    })?;
    if n < min {
        return Err(syn::Error::new(
            i.span(),
            format!("`{key}` must be an integer of at least {min}{why}; found {n}"),
        ));
    }
    Ok(Sp {
        value: n,
        span: i.span(),
    })
}

fn float(value: &Expr) -> syn::Result<Sp<f64>> {
    match lit(value) {
        Some(Lit::Float(f)) => Ok(Sp {
            value: f
                .base10_parse()
                .map_err(|e| syn::Error::new(f.span(), e.to_string()))?,
            span: f.span(),
        }),
        Some(Lit::Int(i)) => Err(syn::Error::new(
            i.span(),
            format!("expected a float literal; write `{}.0`", i.base10_digits()),
        )),
        _ => Err(syn::Error::new(
            value.span(),
            "expected a float literal, like 0.5",
        )),
    }
}

fn ratio(value: &Expr, key: &str) -> syn::Result<Sp<f64>> {
    let f = float(value)?;
    literal::check_ratio(f.value).map_err(|m| syn::Error::new(f.span, format!("`{key}`: {m}")))?;
    Ok(f)
}

fn boolean(value: &Expr) -> syn::Result<Sp<bool>> {
    match lit(value) {
        Some(Lit::Bool(b)) => Ok(Sp {
            value: b.value,
            span: b.span(),
        }),
        _ => Err(syn::Error::new(value.span(), "expected `true` or `false`")),
    }
}

fn choice(value: &Expr, options: &[&str]) -> syn::Result<Sp<String>> {
    let list = options
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let s = string(value, &format!("one of {list}"))?;
    if options.contains(&s.value.as_str()) {
        Ok(s)
    } else {
        let hint = literal::did_you_mean(&s.value, options)
            .map(|k| format!("did you mean \"{k}\"? "))
            .unwrap_or_default();
        Err(syn::Error::new(
            s.span,
            format!(
                "unknown value \"{}\"; {hint}expected one of {list}",
                s.value
            ),
        ))
    }
}

fn path(value: &Expr, key: &str) -> syn::Result<Path> {
    match value {
        Expr::Path(p) if p.qself.is_none() => Ok(p.path.clone()),
        _ => Err(syn::Error::new(
            value.span(),
            format!("expected the path of a `fn(&E) -> bool` for `{key}`, like `is_transient`"),
        )),
    }
}

fn idents(value: &Expr) -> syn::Result<Vec<Ident>> {
    let err = || {
        syn::Error::new(
            value.span(),
            "expected a tuple of argument names, like `args = (user, id)` or `args = ()`",
        )
    };
    let elems: Vec<&Expr> = match value {
        Expr::Tuple(t) => t.elems.iter().collect(),
        Expr::Paren(p) => vec![&*p.expr],
        _ => return Err(err()),
    };
    elems
        .into_iter()
        .map(|e| match e {
            Expr::Path(p) if p.qself.is_none() => p.path.get_ident().cloned().ok_or_else(err),
            _ => Err(err()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_ok(kind: Kind, tokens: TokenStream) -> Policy {
        let mut errors = Errors::default();
        let p = parse(kind, Span::call_site(), tokens, &mut errors);
        assert!(!errors.has_any(), "{:?}", errors.take());
        p
    }

    fn parse_err(kind: Kind, tokens: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        parse(kind, Span::call_site(), tokens, &mut errors);
        errors.take().into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn breaker_arguments() {
        let p = parse_ok(
            Kind::CircuitBreaker,
            quote!(
                failure_rate = 0.5,
                window = "10s",
                cooldown = "5s",
                name = "x"
            ),
        );
        let Args::Breaker(b) = p.args else { panic!() };
        assert_eq!(b.failure_rate.map(|f| f.value), Some(0.5));
        assert_eq!(b.window.map(|w| w.value), Some(Duration::from_secs(10)));
        assert_eq!(p.name.map(|n| n.value).as_deref(), Some("x"));
    }

    #[test]
    fn timeout_positional_and_keyed() {
        for t in [quote!("200ms"), quote!(duration = "200ms")] {
            let Args::Timeout(a) = parse_ok(Kind::Timeout, t).args else {
                panic!()
            };
            assert_eq!(
                a.duration.map(|d| d.value),
                Some(Duration::from_millis(200))
            );
        }
    }

    #[test]
    fn every_error_is_reported() {
        let errs = parse_err(
            Kind::CircuitBreaker,
            quote!(
                treshold = 5,
                failure_rate = 1.5,
                cooldown = "5 s",
                threshold = 0
            ),
        );
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].contains("did you mean `threshold`"));
        assert!(errs[1].contains("ratio in (0, 1]"));
        assert!(errs[2].contains("duration"));
        assert!(errs[3].contains("at least 1"));
    }

    #[test]
    fn duplicates_and_choices() {
        let errs = parse_err(
            Kind::Retry,
            quote!(attempts = 2, attempts = 3, jitter = "ful"),
        );
        assert!(errs[0].contains("set multiple times"));
        assert!(errs[1].contains("did you mean \"full\""));
    }

    #[test]
    fn required_arguments() {
        assert!(parse_err(Kind::Bulkhead, quote!(queue = 2))[0].contains("needs a pool size"));
        assert!(parse_err(Kind::Timeout, quote!())[0].contains("needs a duration"));
        assert!(parse_err(Kind::Fallback, quote!(on = f))[0].contains("needs a handler"));
    }
}
