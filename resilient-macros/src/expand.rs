//! Code generation: one `static` per policy holding its parsed configuration, and one call per
//! layer into `__private`, nested in source order around the untouched body.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ReturnType};

use crate::args::{Args, BreakerArgs, BulkheadArgs, Kind, Policy, RetryArgs};
use crate::params::{self, Param};
use crate::validate::Warning;

/// Everything the expansion needs.
pub(crate) struct Input<'a> {
    pub(crate) krate: TokenStream,
    pub(crate) sig: &'a syn::Signature,
    pub(crate) policies: &'a [Policy],
    pub(crate) warnings: &'a [Warning],
    /// The body statements (for `#[async_trait]` methods, those of the inner `async move`).
    pub(crate) body: TokenStream,
    pub(crate) body_span: Span,
}

/// Returns the statements of the new body.
pub(crate) fn body(input: &Input<'_>) -> TokenStream {
    let p = &input.krate;
    let p = quote!(#p::__private);
    let fn_name = input.sig.ident.to_string();
    let line = quote_spanned!(input.sig.ident.span()=> ::core::line!());
    let mut statics = vec![quote! {
        const __RESILIENT_KEY: &str = ::core::concat!(::core::module_path!(), "::", #fn_name);
        static __RESILIENT_SITE: #p::Site = #p::Site::new(__RESILIENT_KEY, ::core::file!(), #line);
    }];

    let stack = Ident::new("__stack", Span::mixed_site());
    let rejects = input
        .policies
        .iter()
        .any(|p| matches!(p.kind, Kind::CircuitBreaker | Kind::Timeout | Kind::Bulkhead));
    let needs_borrowing_body = input
        .policies
        .iter()
        .any(|p| matches!(p.kind, Kind::Retry | Kind::Fallback));
    let params = params::analyse(input.sig);

    let stmts = &input.body;
    let mut expr = if needs_borrowing_body {
        quote_spanned!(input.body_span=> #p::body(async { #stmts }))
    } else {
        quote_spanned!(input.body_span=> #p::body(async move { #stmts }))
    };

    let mut counts = [0usize; 5];
    for (index, policy) in input.policies.iter().enumerate().rev() {
        let kind_index = Kind::ALL.iter().position(|k| *k == policy.kind).unwrap_or(0);
        counts[kind_index] += 1;
        let mut static_name = format!("__RESILIENT_{}", policy.kind.attr_name().to_uppercase());
        if counts[kind_index] > 1 {
            static_name.push_str(&format!("_{}", counts[kind_index]));
        }
        let st = Ident::new(&static_name, Span::call_site());
        let name = match &policy.name {
            Some(n) => {
                let s = &n.value;
                quote!(#s)
            }
            None => quote!(__RESILIENT_KEY),
        };
        let opt_name = match &policy.name {
            Some(n) => {
                let s = &n.value;
                quote!(::core::option::Option::Some(#s))
            }
            None => quote!(::core::option::Option::None),
        };
        match &policy.args {
            Args::Breaker(b) => {
                let inner_timeout = input.policies[index + 1..].iter().find_map(|p| match &p.args {
                    Args::Timeout(t) => t.duration.as_ref().map(|d| d.value),
                    _ => None,
                });
                let init = if is_name_only(b) && policy.name.is_some() {
                    let n = policy.name.as_ref().map(|n| n.value.clone());
                    quote!(#p::BreakerSite::join(&__RESILIENT_SITE, #n))
                } else {
                    let config = breaker_config(&p, b, inner_timeout);
                    quote!(#p::BreakerSite::new(&__RESILIENT_SITE, #opt_name, #config))
                };
                statics.push(quote!(static #st: #p::BreakerSite = #init;));
                let failure = classify(&p, b.failure.as_ref());
                expr = quote!(#p::circuit_breaker(&#st, #stack, #failure, #expr));
            }
            Args::Timeout(t) => {
                let limit = dur(&p, t.duration.as_ref().map_or(Duration::from_secs(1), |d| d.value));
                statics.push(quote! {
                    static #st: #p::TimeoutSite = #p::TimeoutSite { name: #name, limit: #limit };
                });
                expr = quote!(#p::timeout(&#st, #expr));
            }
            Args::Bulkhead(b) => {
                let config = bulkhead_config(&p, b);
                statics.push(quote! {
                    static #st: #p::BulkheadSite = #p::BulkheadSite::new(&__RESILIENT_SITE, #opt_name, #config);
                });
                expr = quote!(#p::bulkhead(&#st, #expr));
            }
            Args::Retry(r) => {
                let config = retry_config(&p, r);
                statics.push(quote! {
                    static #st: #p::RetrySite = #p::RetrySite { name: #name, config: #config };
                });
                let when = classify(&p, r.when.as_ref());
                let rebinds = retry_rebinds(&params);
                let retry = Ident::new("__retry", Span::mixed_site());
                let out = Ident::new("__out", Span::mixed_site());
                expr = quote! {
                    async {
                        let mut #retry = #p::Retry::new(&#st, #stack);
                        loop {
                            #rebinds
                            if let #p::Flow::Break(#out) = #retry.next(#expr.await, #when).await {
                                break #out;
                            }
                        }
                    }
                };
            }
            Args::Fallback(f) => {
                statics.push(quote! {
                    static #st: #p::FallbackSite = #p::FallbackSite { name: #name };
                });
                let on = classify(&p, f.on.as_ref());
                let (preclones, args) = fallback_args(&params, f.args.as_deref());
                let out = Ident::new("__out", Span::mixed_site());
                let err = Ident::new("__err", Span::mixed_site());
                let handler = f.handler.as_ref().map_or_else(|| quote!(missing_handler), |h| quote!(#h));
                let hspan = f.handler.as_ref().map_or_else(Span::call_site, Spanned::span);
                let call = quote_spanned!(hspan=> #handler(#(#args,)* #err).await);
                expr = quote! {
                    async {
                        #preclones
                        let #out = #expr.await;
                        match #p::fallback(&#st, #stack, #on, #out) {
                            #p::Flow::Break(#out) => #out,
                            #p::Flow::Continue(#err) => #p::lift(#call),
                        }
                    }
                };
            }
        }
    }
    statics.reverse();
    let first = statics.remove(statics.len() - 1);
    let ret_span = match &input.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => input.sig.ident.span(),
    };
    let make_stack = if rejects {
        quote_spanned!(ret_span=> #p::stack())
    } else {
        quote!(#p::plain_stack())
    };
    let warnings = input.warnings.iter().enumerate().map(|(i, w)| {
        let ty = format_ident!("__ResilientWarning{}", i);
        let msg = &w.message;
        let used = quote_spanned!(w.span=> #ty);
        quote! {
            #[deprecated(note = #msg)]
            struct #ty;
            let _ = #used;
        }
    });
    quote! {
        #first
        #(#statics)*
        #(#warnings)*
        let #stack = #make_stack;
        #stack.finish(#expr).await
    }
}

fn is_name_only(b: &BreakerArgs) -> bool {
    let BreakerArgs {
        threshold,
        window,
        failure_rate,
        last,
        min_calls,
        cooldown,
        max_cooldown,
        half_open_calls,
        success_threshold,
        ramp,
        slow_call,
        failure,
        critical,
    } = b;
    threshold.is_none()
        && window.is_none()
        && failure_rate.is_none()
        && last.is_none()
        && min_calls.is_none()
        && cooldown.is_none()
        && max_cooldown.is_none()
        && half_open_calls.is_none()
        && success_threshold.is_none()
        && ramp.is_none()
        && slow_call.is_none()
        && failure.is_none()
        && critical.is_none()
}

fn classify(p: &TokenStream, path: Option<&syn::Path>) -> TokenStream {
    match path {
        Some(path) => quote_spanned!(path.span()=> #p::Pred(#path)),
        None => quote!(#p::Every),
    }
}

/// `Dur::from_secs(10)` and friends: the largest unit that is exact, for readable expansions.
fn dur(p: &TokenStream, d: Duration) -> TokenStream {
    let nanos = d.as_nanos();
    let (f, n) = if nanos % 1_000_000_000 == 0 {
        ("from_secs", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        ("from_millis", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        ("from_micros", nanos / 1_000)
    } else {
        ("from_nanos", nanos)
    };
    let f = Ident::new(f, Span::call_site());
    let n = Literal::u64_unsuffixed(u64::try_from(n).unwrap_or(u64::MAX));
    quote!(#p::Dur::#f(#n))
}

fn int(n: u32) -> Literal {
    Literal::u32_unsuffixed(n)
}

fn float(f: f64) -> Literal {
    Literal::f64_unsuffixed(f)
}

fn some_dur(p: &TokenStream, d: Duration) -> TokenStream {
    let d = dur(p, d);
    quote!(::core::option::Option::Some(#d))
}

fn breaker_config(p: &TokenStream, b: &BreakerArgs, inner_timeout: Option<Duration>) -> TokenStream {
    let v = |s: &Option<crate::args::Sp<u32>>| s.as_ref().map(|s| s.value);
    let d = |s: &Option<crate::args::Sp<Duration>>| s.as_ref().map(|s| s.value);
    let rule = match (v(&b.threshold), d(&b.window), b.failure_rate.as_ref().map(|r| r.value), v(&b.last)) {
        (Some(t), None, _, _) => {
            let t = int(t);
            quote!(#p::TripRule::Consecutive { threshold: #t })
        }
        (Some(t), Some(w), _, _) => {
            let (t, w) = (int(t), dur(p, w));
            quote!(#p::TripRule::CountInWindow { threshold: #t, window: #w })
        }
        (None, None, None, None) if b.min_calls.is_none() => quote!(#p::TripRule::DEFAULT),
        (None, _, rate, Some(last)) => {
            let rate = float(rate.unwrap_or(0.5));
            let min = int(v(&b.min_calls).unwrap_or(last));
            let last = int(last);
            quote!(#p::TripRule::RateOverCalls { failure_rate: #rate, last: #last, min_calls: #min })
        }
        (None, window, rate, None) => {
            let rate = float(rate.unwrap_or(0.5));
            let window = dur(p, window.unwrap_or(Duration::from_secs(30)));
            let min = int(v(&b.min_calls).unwrap_or(20));
            quote!(#p::TripRule::RateOverTime { failure_rate: #rate, window: #window, min_calls: #min })
        }
    };
    let mut fields = vec![quote!(rule: #rule)];
    if let Some(c) = d(&b.cooldown) {
        let c = dur(p, c);
        fields.push(quote!(cooldown: #c));
    }
    if let Some(c) = d(&b.max_cooldown) {
        let c = some_dur(p, c);
        fields.push(quote!(max_cooldown: #c));
    }
    let successes = v(&b.success_threshold);
    if let Some(s) = successes {
        let s = int(s);
        fields.push(quote!(success_threshold: #s));
    }
    if let Some(h) = v(&b.half_open_calls).or(successes) {
        let h = int(h);
        fields.push(quote!(half_open_calls: #h));
    }
    if let Some(r) = d(&b.ramp) {
        let r = some_dur(p, r);
        fields.push(quote!(ramp: #r));
    }
    if let Some(s) = d(&b.slow_call) {
        let s = some_dur(p, s);
        fields.push(quote!(slow_call: #s));
    }
    if let Some(c) = &b.critical {
        let c = c.value;
        fields.push(quote!(critical: #c));
    }
    if let Some(t) = inner_timeout {
        let t = some_dur(p, t);
        fields.push(quote!(inner_timeout: #t));
    }
    quote!(#p::BreakerConfig { #(#fields,)* ..#p::BreakerConfig::DEFAULT })
}

fn bulkhead_config(p: &TokenStream, b: &BulkheadArgs) -> TokenStream {
    let pool = Literal::usize_unsuffixed(b.pool.as_ref().map_or(1, |s| s.value) as usize);
    let queue = Literal::usize_unsuffixed(b.queue.as_ref().map_or(0, |s| s.value) as usize);
    let max_wait = match &b.max_wait {
        Some(w) => some_dur(p, w.value),
        None => quote!(::core::option::Option::None),
    };
    quote!(#p::BulkheadConfig { pool: #pool, queue: #queue, max_wait: #max_wait })
}

fn retry_config(p: &TokenStream, r: &RetryArgs) -> TokenStream {
    let mut fields = Vec::new();
    if let Some(a) = &r.attempts {
        let a = int(a.value);
        fields.push(quote!(attempts: #a));
    }
    if let Some(b) = &r.backoff {
        let b = dur(p, b.value);
        fields.push(quote!(backoff: #b));
    }
    if let Some(s) = &r.strategy {
        let s = match s.value.as_str() {
            "linear" => quote!(Linear),
            "constant" => quote!(Constant),
            _ => quote!(Exponential),
        };
        fields.push(quote!(strategy: #p::Strategy::#s));
    }
    if let Some(m) = &r.multiplier {
        let m = float(m.value);
        fields.push(quote!(multiplier: #m));
    }
    if let Some(m) = &r.max_backoff {
        let m = dur(p, m.value);
        fields.push(quote!(max_backoff: #m));
    }
    if let Some(j) = &r.jitter {
        let j = match j.value.as_str() {
            "equal" => quote!(Equal),
            "none" => quote!(None),
            "decorrelated" => quote!(Decorrelated),
            _ => quote!(Full),
        };
        fields.push(quote!(jitter: #p::Jitter::#j));
    }
    if let Some(m) = &r.max_duration {
        let m = some_dur(p, m.value);
        fields.push(quote!(max_duration: #m));
    }
    quote!(#p::RetryConfig { #(#fields,)* ..#p::RetryConfig::DEFAULT })
}

/// Per attempt: clone what is owned (spanned at the parameter, so a missing `Clone` lands
/// there), reborrow what is `&mut`.
fn retry_rebinds(params: &[Param]) -> TokenStream {
    let mut out = TokenStream::new();
    for param in params {
        match param {
            Param::Unique(ident) => out.extend(quote!(let #ident = &mut *#ident;)),
            Param::Owned { ident, mutable, span } => {
                let m = mutable.then(|| quote!(mut));
                out.extend(quote_spanned!(*span=> let #m #ident = ::core::clone::Clone::clone(&#ident);));
            }
            Param::Pattern { bindings, span } => {
                for (ident, mutable) in bindings {
                    let m = mutable.then(|| quote!(mut));
                    out.extend(quote_spanned!(*span=> let #m #ident = ::core::clone::Clone::clone(&#ident);));
                }
            }
            Param::RefSelf | Param::TypedSelf | Param::OwnedSelf(_) | Param::Shared(_) | Param::Wild(_) => {}
        }
    }
    out
}

/// Clones taken before the primary call, and the handler's argument list.
fn fallback_args(params: &[Param], only: Option<&[Ident]>) -> (TokenStream, Vec<TokenStream>) {
    let mut pre = TokenStream::new();
    let mut args = Vec::new();
    // With `args = (..)`, the handler takes the listed arguments in the listed order.
    let chosen: Vec<&Param> = match only {
        Some(only) => only
            .iter()
            .filter_map(|i| params.iter().find(|p| p.name().is_some_and(|n| *i == n)))
            .collect(),
        None => params.iter().collect(),
    };
    for param in chosen {
        match param {
            Param::RefSelf => args.push(quote!(self)),
            Param::TypedSelf | Param::OwnedSelf(_) => {
                let copy = Ident::new("__fb_self", Span::mixed_site());
                pre.extend(quote!(let #copy = ::core::clone::Clone::clone(&self);));
                args.push(quote!(#copy));
            }
            Param::Shared(ident) | Param::Unique(ident) => args.push(quote!(#ident)),
            Param::Owned { ident, span, .. } => {
                let copy = Ident::new(&format!("__fb_{ident}"), Span::mixed_site());
                pre.extend(quote_spanned!(*span=> let #copy = ::core::clone::Clone::clone(&#ident);));
                args.push(quote!(#copy));
            }
            Param::Pattern { .. } | Param::Wild(_) => {}
        }
    }
    (pre, args)
}
