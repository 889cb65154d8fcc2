//! Cross-argument, cross-policy and signature rules. Types are not checked here: a proc macro
//! sees tokens, so type requirements are trait bounds in the runtime, spanned at user code.

use std::time::Duration;

use syn::spanned::Spanned;

use crate::args::{Args, BreakerArgs, Kind, Policy};
use crate::errors::Errors;
use crate::item::{Body, ItemFn};
use crate::params::{self, Param};

/// A compile-time warning (the deprecated-item trick).
pub(crate) struct Warning {
    pub(crate) span: proc_macro2::Span,
    /// The deprecated item's name, which rustc shows next to the message.
    pub(crate) name: &'static str,
    pub(crate) message: String,
}

pub(crate) fn stack(policies: &[Policy], errors: &mut Errors, warnings: &mut Vec<Warning>) {
    for (j, later) in policies.iter().enumerate() {
        for (i, earlier) in policies[..j].iter().enumerate() {
            if earlier.kind != later.kind {
                continue;
            }
            let retry_between = policies[i + 1..j].iter().any(|p| p.kind == Kind::Retry);
            let name = later.kind.attr_name();
            if !retry_between {
                errors.push(syn::Error::new(
                    later.span,
                    format!(
                        "second `#[{name}]` on this function; a policy may appear twice only with a \
                         `#[retry]` between the two (for example a total and a per-attempt timeout)"
                    ),
                ));
            } else if let (Some(outer), Some(inner)) = (timeout_of(earlier), timeout_of(later))
                && inner >= outer
            {
                let span = match &later.args {
                    Args::Timeout(t) => t.duration.as_ref().map_or(later.span, |d| d.span),
                    _ => later.span,
                };
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "the per-attempt `#[timeout]` ({inner:?}) must be shorter than the total \
                         `#[timeout]` above the `#[retry]` ({outer:?})"
                    ),
                ));
            }
        }
    }
    anti_patterns(policies, warnings);
    for (i, p) in policies.iter().enumerate() {
        policy(policies, i, p, errors);
    }
}

/// Orders that work but defeat a policy: warnings, not errors.
fn anti_patterns(policies: &[Policy], warnings: &mut Vec<Warning>) {
    let position = |k: Kind| policies.iter().position(|p| p.kind == k);
    if let (Some(retry), Some(fallback)) = (position(Kind::Retry), position(Kind::Fallback))
        && fallback > retry
    {
        warnings.push(Warning {
            span: policies[fallback].span,
            name: "__ResilientFallbackBelowRetry",
            message: "`#[fallback]` below `#[retry]`: the fallback answers every attempt, so the \
                      retry never sees a failure. Put `#[fallback]` above `#[retry]`."
                .into(),
        });
    }
    if let (Some(retry), Some(bulkhead)) = (position(Kind::Retry), position(Kind::Bulkhead))
        && bulkhead < retry
    {
        warnings.push(Warning {
            span: policies[bulkhead].span,
            name: "__ResilientBulkheadAboveRetry",
            message: "`#[bulkhead]` above `#[retry]`: the permit is held through every backoff \
                      sleep. Put `#[bulkhead]` below `#[retry]`."
                .into(),
        });
    }
}

/// One policy's own cross-argument rules, and its rules against the layers inside it.
fn policy(policies: &[Policy], i: usize, p: &Policy, errors: &mut Errors) {
    match &p.args {
        Args::Breaker(b) => {
            breaker(b, errors);
            if let (Some(slow), Some(inner)) =
                (&b.slow_call, policies[i + 1..].iter().find_map(timeout_of))
                && slow.value >= inner
            {
                errors.push(syn::Error::new(
                        slow.span,
                        format!(
                            "`slow_call` ({:?}) must be shorter than the inner `#[timeout]` ({inner:?}): \
                             no call could be slow without timing out first",
                            slow.value
                        ),
                    ));
            }
        }
        Args::Bulkhead(b) => {
            if let Some(w) = &b.max_wait
                && b.queue.as_ref().is_none_or(|q| q.value == 0)
            {
                errors.push(syn::Error::new(
                    w.span,
                    "`max_wait` needs `queue = N` with N >= 1: without a queue no caller waits",
                ));
            }
        }
        Args::Retry(r) => {
            if let (Some(m), Some(s)) = (&r.multiplier, &r.strategy)
                && s.value != "exponential"
            {
                errors.push(syn::Error::new(
                    m.span,
                    format!(
                        "`multiplier` applies only to `strategy = \"exponential\"`, not \"{}\"",
                        s.value
                    ),
                ));
            }
            let backoff = r
                .backoff
                .as_ref()
                .map_or(Duration::from_millis(100), |b| b.value);
            let max = r
                .max_backoff
                .as_ref()
                .map_or(Duration::from_secs(10), |b| b.value);
            if max < backoff {
                let span = r
                    .max_backoff
                    .as_ref()
                    .or(r.backoff.as_ref())
                    .map_or(p.span, |s| s.span);
                errors.push(syn::Error::new(
                    span,
                    format!("`max_backoff` ({max:?}) must be at least `backoff` ({backoff:?})"),
                ));
            }
        }
        Args::Timeout(_) | Args::Fallback(_) => {}
    }
}

fn timeout_of(p: &Policy) -> Option<Duration> {
    match &p.args {
        Args::Timeout(t) => t.duration.as_ref().map(|d| d.value),
        _ => None,
    }
}

const SHAPES: &str = "the trip rule is one of: nothing (the default, failure_rate = 0.5 over 30s with \
                      min_calls = 20); `threshold = N` (N consecutive failures); `threshold = N, \
                      window = \"30s\"` (N failures within 30s); `failure_rate = 0.5` with `window` or \
                      `last` and optional `min_calls`; `window = \"10s\"` with optional `min_calls`";

fn breaker(b: &BreakerArgs, errors: &mut Errors) {
    // The same caps the runtime's `BreakerConfig::validate` applies.
    if let (Some(t), Some(_)) = (&b.threshold, &b.window)
        && t.value > crate::literal::MAX_TIMED_THRESHOLD
    {
        errors.push(syn::Error::new(
            t.span,
            format!(
                "`threshold` with `window` may not exceed {} (the breaker keeps that many failure \
                 times); use `failure_rate` for larger volumes",
                crate::literal::MAX_TIMED_THRESHOLD
            ),
        ));
    }
    if let Some(l) = &b.last
        && l.value > crate::literal::MAX_LAST
    {
        errors.push(syn::Error::new(
            l.span,
            format!(
                "`last` may not exceed {} (one bit per call is kept)",
                crate::literal::MAX_LAST
            ),
        ));
    }
    let mut conflict = |span, what: &str| {
        errors.push(syn::Error::new(span, format!("{what}; {SHAPES}")));
    };
    if let Some(t) = &b.threshold {
        if let Some(r) = &b.failure_rate {
            conflict(r.span, "`failure_rate` cannot be combined with `threshold`");
        }
        if let Some(l) = &b.last {
            conflict(l.span, "`last` cannot be combined with `threshold`");
        }
        if let Some(m) = &b.min_calls {
            conflict(m.span, "`min_calls` cannot be combined with `threshold`");
        }
        let _ = t;
    } else {
        if let (Some(w), Some(_)) = (&b.window, &b.last) {
            conflict(
                w.span,
                "`window` and `last` are two kinds of window; choose one",
            );
        }
        if b.failure_rate.is_none() {
            if let Some(l) = &b.last {
                conflict(l.span, "`last` needs `failure_rate`");
            }
            if let (Some(m), None) = (&b.min_calls, &b.window) {
                conflict(m.span, "`min_calls` needs `failure_rate` or `window`");
            }
        }
        if let (Some(m), Some(l)) = (&b.min_calls, &b.last)
            && m.value > l.value
        {
            errors.push(syn::Error::new(
                m.span,
                format!(
                    "`min_calls` ({}) may not exceed `last` ({})",
                    m.value, l.value
                ),
            ));
        }
    }
    let cooldown = b
        .cooldown
        .as_ref()
        .map_or(Duration::from_secs(5), |c| c.value);
    if let Some(max) = &b.max_cooldown
        && max.value < cooldown
    {
        errors.push(syn::Error::new(
            max.span,
            format!(
                "`max_cooldown` ({:?}) must be at least `cooldown` ({cooldown:?})",
                max.value
            ),
        ));
    }
    for n in [&b.half_open_calls, &b.success_threshold]
        .into_iter()
        .flatten()
    {
        if n.value > 0xFFFF {
            errors.push(syn::Error::new(n.span, "expected at most 65535"));
        }
    }
}

/// Signature rules. `async_trait` says the body is `Box::pin(async move { .. })` from
/// `#[async_trait]`, so a missing `async` is expected.
pub(crate) fn signature(
    item: &ItemFn,
    policies: &[Policy],
    first: Kind,
    async_trait: bool,
    errors: &mut Errors,
) {
    let name = first.attr_name();
    let sig = &item.sig;
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new(
            c.span,
            format!(
                "`#[{name}]` cannot be applied to a `const fn`: it protects calls at run time and \
                 needs an `async fn`"
            ),
        ));
    }
    // A `const fn` is synchronous by nature: one error (at `const`) is enough.
    if sig.asyncness.is_none() && !async_trait && sig.constness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "`#[{name}]` requires an `async fn`; the `async` keyword is missing from the \
                 function declaration (if the source says `async fn`, an attribute above \
                 `#[{name}]`, such as `#[tokio::test]` or `#[tokio::main]`, already made it \
                 synchronous: write the resilience attributes above that one)"
            ),
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new(
            v.span(),
            format!("`#[{name}]` does not support variadic functions"),
        ));
    }
    if let Body::Semi(semi) = &item.body {
        errors.push(syn::Error::new(
            semi.span,
            format!(
                "`#[{name}]` needs a function body: on a trait method declaration it cannot reach the \
                 implementations; put it on the method in each `impl` instead"
            ),
        ));
    }
    let params = params::analyse(sig);
    let has = |k: Kind| policies.iter().any(|p| p.kind == k);
    if has(Kind::Retry) {
        for p in &params {
            if let Param::OwnedSelf(span) = p {
                errors.push(syn::Error::new(
                    *span,
                    "`#[retry]` runs the body once per attempt, so it cannot take `self` by value; \
                     take `&self` or `&mut self`, or `self: Arc<Self>` and clone the `Arc` where \
                     the body needs it by value",
                ));
            }
        }
    }
    for policy in policies {
        let Args::Fallback(f) = &policy.args else {
            continue;
        };
        match &f.args {
            Some(list) => {
                for ident in list {
                    if !params
                        .iter()
                        .any(|p| p.name().as_deref() == Some(&ident.to_string()))
                    {
                        errors.push(syn::Error::new(
                            ident.span(),
                            format!("`{ident}` is not an argument of this function"),
                        ));
                    }
                }
            }
            None => {
                for p in &params {
                    if let Param::Pattern { span, .. } | Param::Wild(span) = p {
                        errors.push(syn::Error::new(
                            *span,
                            "`#[fallback]` passes every argument to its handler, and this one has no \
                             name; bind it to a name, or choose the arguments with `args = (..)`",
                        ));
                    }
                }
            }
        }
    }
}
