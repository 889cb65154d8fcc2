//! Code generation: one `static` per policy holding its parsed configuration, and one flat
//! block in source order around the untouched body: a guard per breaker and bulkhead (enter,
//! then `exit` with the inner result), a loop for retry, a match for fallback, and a wrapping
//! future only for a timeout. See `resilient_runtime::__private` for why it is flat.

use std::time::Duration;

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, Ident, PathArguments, ReturnType, Token, Type};

use crate::args::{Args, BreakerArgs, BulkheadArgs, FallbackArgs, Kind, Policy, RetryArgs};
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
    /// What the body calls the receiver when it is not `self`: async-trait's `__self`.
    pub(crate) receiver: Option<Ident>,
    /// The body is the inner block of an `#[async_trait]` method.
    pub(crate) async_trait: bool,
}

/// The same tokens, reported at `span`'s location (their hygiene is kept).
fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut out = Group::new(g.delimiter(), located_at(g.stream(), span));
                out.set_span(g.span().located_at(span));
                TokenTree::Group(out)
            }
            mut tt => {
                tt.set_span(tt.span().located_at(span));
                tt
            }
        })
        .collect()
}

/// The spans of the first and last tokens: a path spanned from one to the other makes rustc
/// underline everything between (stable proc macros cannot join spans themselves).
fn first_last(tokens: &TokenStream) -> (Span, Span) {
    let mut iter = tokens.clone().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| match t {
        TokenTree::Group(g) => g.span_close(),
        t => t.span(),
    });
    (first, last)
}

/// The return type with every `impl Trait` replaced by `_`, for a type annotation inside the
/// body (an opaque type cannot be named there).
fn erase_impl_trait(ty: &Type) -> Type {
    let mut ty = ty.clone();
    erase(&mut ty);
    ty
}

fn erase(ty: &mut Type) {
    match ty {
        Type::ImplTrait(i) => {
            *ty = Type::Infer(syn::TypeInfer {
                attrs: Vec::new(),
                underscore_token: Token![_](i.impl_token.span),
            });
        }
        Type::Path(p) => {
            if let Some(q) = &mut p.qself {
                erase(&mut q.ty);
            }
            for seg in &mut p.path.segments {
                match &mut seg.arguments {
                    PathArguments::AngleBracketed(a) => {
                        for arg in &mut a.args {
                            match arg {
                                GenericArgument::Type(t) => erase(t),
                                GenericArgument::AssocType(a) => erase(&mut a.ty),
                                _ => {}
                            }
                        }
                    }
                    PathArguments::Parenthesized(a) => {
                        a.inputs.iter_mut().for_each(|n| erase(&mut n.ty));
                        if let ReturnType::Type(_, t) = &mut a.output {
                            erase(t);
                        }
                    }
                    PathArguments::None => {}
                }
            }
        }
        Type::Reference(r) => erase(&mut r.elem),
        Type::Ptr(p) => erase(&mut p.elem),
        Type::Slice(s) => erase(&mut s.elem),
        Type::Array(a) => erase(&mut a.elem),
        Type::Paren(p) => erase(&mut p.elem),
        Type::Group(g) => erase(&mut g.elem),
        Type::Tuple(t) => t.elems.iter_mut().for_each(erase),
        _ => {}
    }
}

/// What every layer's codegen needs.
struct Ctx<'a> {
    input: &'a Input<'a>,
    /// `<crate>::__private`.
    p: TokenStream,
    /// The `Stack<E>` local.
    stack: Ident,
    params: Vec<Param>,
    /// The outermost policies when they are `#[retry]`s and `#[fallback]`s: the innermost of
    /// them returns a success from the function at once (see [`early_success`]).
    outer_group: Vec<(Kind, Ident)>,
}

/// Returns the statements of the new body.
pub(crate) fn body(input: &Input<'_>) -> TokenStream {
    let krate = &input.krate;
    let names = static_names(input.policies);
    let outer_group = input
        .policies
        .iter()
        .zip(&names)
        .take_while(|(policy, _)| matches!(policy.kind, Kind::Retry | Kind::Fallback))
        .map(|(policy, name)| (policy.kind, name.clone()))
        .collect();
    let cx = Ctx {
        input,
        p: quote!(__resilient),
        stack: Ident::new("__stack", Span::mixed_site()),
        params: params::analyse(input.sig),
        outer_group,
    };
    let p = &cx.p;
    let stack = &cx.stack;
    let fn_name = input.sig.ident.to_string();
    let site = quote! {
        use #krate::__private as __resilient;
        static __RESILIENT_SITE: #p::Site = #p::site!(#fn_name);
    };

    // Innermost first: the body, then each layer around it, in reverse source order.
    let mut expr = innermost(&cx);
    let mut statics = Vec::with_capacity(input.policies.len());
    let mut decls = Vec::with_capacity(input.policies.len());
    for (index, policy) in input.policies.iter().enumerate().rev() {
        let st = &names[index];
        let variant = Ident::new(
            match policy.kind {
                Kind::CircuitBreaker => "Breaker",
                Kind::Timeout => "Timeout",
                Kind::Bulkhead => "Bulkhead",
                Kind::Retry => "Retry",
                Kind::Fallback => "Fallback",
            },
            Span::call_site(),
        );
        decls.push(quote!(#p::Decl::#variant(&#st)));
        let (item, wrapped) = layer(&cx, index, policy, st, &expr);
        statics.push(item);
        expr = wrapped;
    }
    statics.reverse();
    decls.reverse();
    let value = &expr.value;
    let n = Literal::usize_unsuffixed(decls.len());
    // Link-time registration: `resilient::policies()` lists this function before any call.
    let registration = quote! {
        static __RESILIENT_POLICIES: [#p::Decl; #n] = [#(#decls),*];
        #p::register!(__RESILIENT_SITE, __RESILIENT_POLICIES);
    };

    let rejects = input.policies.iter().any(|p| {
        matches!(
            p.kind,
            Kind::CircuitBreaker | Kind::Timeout | Kind::Bulkhead
        )
    });
    let (make_stack, finish) = if rejects {
        // The `E: From<resilient::Error>` bound is checked by these calls: spread it over the
        // return type, so rustc reports a missing impl there and not at the attribute.
        let (first, last) = match &input.sig.output {
            ReturnType::Type(_, ty) => first_last(&quote!(#ty)),
            ReturnType::Default => (input.sig.ident.span(), input.sig.ident.span()),
        };
        let mut call = located_at(quote!(#p::), first);
        call.extend(located_at(quote!(stack()), last));
        let mut finish = located_at(quote!(#p::), first);
        finish.extend(located_at(quote!(finish), last));
        (call, quote!(#finish(#stack, #value)))
    } else {
        (quote!(#p::plain_stack()), quote!(#stack.finish(#value)))
    };
    let warning_items = input.warnings.iter().map(|w| {
        let ty = Ident::new(w.name, Span::call_site());
        let msg = &w.message;
        quote!(#[deprecated(note = #msg)] struct #ty;)
    });
    let warning_uses = input.warnings.iter().map(|w| {
        let used = Ident::new(w.name, Span::call_site().located_at(w.span));
        quote!(let _ = #used;)
    });
    quote! {
        #site
        #(#statics)*
        #registration
        #(#warning_items)*
        #(#warning_uses)*
        let #stack = #make_stack;
        #finish
    }
}

/// Each policy's static, `__RESILIENT_<KIND>`, numbered from the innermost when a kind
/// appears twice (`_2` for the outer one).
fn static_names(policies: &[Policy]) -> Vec<Ident> {
    let mut counts = [0usize; 5];
    let mut names: Vec<Ident> = policies
        .iter()
        .rev()
        .map(|policy| {
            let kind_index = Kind::ALL
                .iter()
                .position(|k| *k == policy.kind)
                .unwrap_or(0);
            counts[kind_index] += 1;
            let mut name = format!("__RESILIENT_{}", policy.kind.attr_name().to_uppercase());
            if counts[kind_index] > 1 {
                name = format!("{name}_{}", counts[kind_index]);
            }
            Ident::new(&name, Span::call_site())
        })
        .collect();
    names.reverse();
    names
}

/// For the innermost of the outermost `#[retry]`s and `#[fallback]`s (policy `index`), with
/// its result in `value`: a success is the function's result, so it is returned at once, with
/// each of those layers told (for its metrics), instead of passing through the retry's
/// decision, the fallback's match and the stack's conversion. Each of those moves the result
/// through memory, and the copies cost the full stack ~10 ns (`perf annotate`). Only there: a
/// `return` inside a timeout's `async` block, or under a breaker or bulkhead, would skip them.
fn early_success(cx: &Ctx<'_>, index: usize, value: &Ident) -> TokenStream {
    if index + 1 != cx.outer_group.len() {
        return TokenStream::new();
    }
    let p = &cx.p;
    let v = Ident::new("__v", Span::mixed_site());
    let retry = Ident::new("__retry", Span::mixed_site());
    let mut ok = quote!(#v);
    for (kind, st) in cx.outer_group.iter().rev() {
        ok = if *kind == Kind::Retry {
            quote!(#retry.succeeded(#ok))
        } else {
            quote!(#p::fallback_succeeded(&#st, #ok))
        };
    }
    quote! {
        if let #p::Ok(#v) = #value {
            return #p::Ok(#ok);
        }
    }
}

/// What a layer wraps: an expression of the stack's `Result<T, Outcome<E>>`, evaluated in the
/// function's future, and, when that expression merely awaits one future, that future (a
/// timeout then wraps it directly instead of in an `async` block of its own).
struct Inner {
    value: TokenStream,
    future: Option<TokenStream>,
    /// `future` is a timeout: a breaker directly around it awaits `future.guarded(..)`
    /// instead, which records the call with the time the timeout read at completion (one
    /// clock read fewer).
    timeout: bool,
}

impl Inner {
    fn awaited(future: TokenStream, span: Span) -> Inner {
        Inner {
            value: quote_spanned!(span=> #future.await),
            future: Some(future),
            timeout: false,
        }
    }

    fn value(value: TokenStream) -> Inner {
        Inner {
            value,
            future: None,
            timeout: false,
        }
    }
}

/// The user's body, emitted once and untouched, as the innermost future.
fn innermost(cx: &Ctx<'_>) -> Inner {
    let Ctx { input, p, .. } = cx;
    let stmts = &input.body;
    // A return edge of the function's own type (impl Trait erased) before the body, so the
    // body's `return`s and tail are checked against it and type errors land in the body.
    // async-trait bodies already start with one.
    let fake_return = match &input.sig.output {
        ReturnType::Type(_, ty) if !input.async_trait => {
            let ty = erase_impl_trait(ty);
            let ret = Ident::new("__ret", Span::mixed_site());
            quote! {
                if let #p::Some(#ret) = #p::None::<#ty> {
                    return #ret;
                }
            }
        }
        _ => TokenStream::new(),
    };
    // Under `#[retry]` and `#[fallback]` the body borrows the parameters (each attempt, and
    // the handler, get their own copies), so its block is not `move`.
    let borrows = input
        .policies
        .iter()
        .any(|p| matches!(p.kind, Kind::Retry | Kind::Fallback));
    // The body keeps a block of its own, so its leading items do not follow a statement. Its
    // braces are the expansion's (no `unused_braces` on a one-line body) but are reported at
    // the user's braces.
    let mut body = Group::new(Delimiter::Brace, stmts.clone());
    body.set_span(Span::call_site().located_at(input.body_span));
    let future = if borrows {
        quote_spanned!(input.body_span=> #p::body(&__RESILIENT_POLICIES, async { #fake_return #body }))
    } else {
        quote_spanned!(input.body_span=> #p::body(&__RESILIENT_POLICIES, async move { #fake_return #body }))
    };
    Inner::awaited(future, input.body_span)
}

/// One policy: its `static`, and the layer's call around `inner`.
fn layer(
    cx: &Ctx<'_>,
    index: usize,
    policy: &Policy,
    st: &Ident,
    inner_layers: &Inner,
) -> (TokenStream, Inner) {
    let inner = &inner_layers.value;
    let Ctx {
        input, p, stack, ..
    } = cx;
    let opt_name = policy.name.as_ref().map_or_else(
        || quote!(#p::None),
        |n| {
            let s = &n.value;
            quote!(#p::Some(#s))
        },
    );
    match &policy.args {
        Args::Breaker(b) => {
            let inner_timeout = input.policies[index + 1..]
                .iter()
                .find_map(|p| match &p.args {
                    Args::Timeout(t) => t.duration.as_ref().map(|d| d.value),
                    _ => None,
                });
            let init = if is_name_only(b) && policy.name.is_some() {
                let n = policy.name.as_ref().map(|n| n.value.clone());
                quote!(#p::BreakerSite::join(&__RESILIENT_SITE, #n))
            } else {
                let config = breaker_config(p, b, inner_timeout);
                quote!(#p::BreakerSite::new(&__RESILIENT_SITE, #opt_name, #config))
            };
            let failure = classify(p, b.failure.as_ref());
            let (call, rejected) = guard_idents();
            let exit = if let (true, Some(timeout)) = (inner_layers.timeout, &inner_layers.future) {
                quote!(#timeout.guarded(#call, #stack, #failure).await)
            } else {
                quote!(#call.exit(#stack, #failure, #inner))
            };
            (
                quote!(static #st: #p::BreakerSite = #init;),
                Inner::value(quote! {
                    match #p::breaker_enter(&#st) {
                        #p::Ok(#call) => #exit,
                        #p::Err(#rejected) => #p::rejected(#rejected),
                    }
                }),
            )
        }
        Args::Timeout(t) => {
            let limit = dur(
                p,
                t.duration
                    .as_ref()
                    .map_or(Duration::from_secs(1), |d| d.value),
            );
            (
                quote!(static #st: #p::TimeoutSite = #p::TimeoutSite::new(&__RESILIENT_SITE, #opt_name, #limit);),
                {
                    let future = inner_layers
                        .future
                        .clone()
                        .unwrap_or_else(|| quote!(async { #inner }));
                    Inner {
                        timeout: true,
                        ..Inner::awaited(quote!(#p::timeout(&#st, #future)), Span::call_site())
                    }
                },
            )
        }
        Args::Bulkhead(b) => {
            let config = bulkhead_config(p, b);
            (
                quote!(static #st: #p::BulkheadSite = #p::BulkheadSite::new(&__RESILIENT_SITE, #opt_name, #config);),
                {
                    let (call, rejected) = guard_idents();
                    Inner::value(quote! {
                        match #p::bulkhead_enter(&#st).await {
                            #p::Ok(#call) => #call.exit(#inner),
                            #p::Err(#rejected) => #p::rejected(#rejected),
                        }
                    })
                },
            )
        }
        Args::Retry(r) => {
            let config = retry_config(p, r);
            (
                quote!(static #st: #p::RetrySite = #p::RetrySite::new(&__RESILIENT_SITE, #opt_name, #config);),
                Inner::value(retry_layer(cx, index, r, st, inner)),
            )
        }
        Args::Fallback(f) => (
            {
                let handler = f
                    .handler
                    .as_ref()
                    .map(|h| quote!(#h).to_string().replace(' ', ""))
                    .unwrap_or_default();
                quote!(static #st: #p::FallbackSite = #p::FallbackSite::new(&__RESILIENT_SITE, #opt_name, #handler);)
            },
            Inner::value(fallback_layer(cx, index, f, st, inner)),
        ),
    }
}

/// The bindings of a guard's match: the admitted call and the rejection.
fn guard_idents() -> (Ident, Ident) {
    (
        Ident::new("__call", Span::mixed_site()),
        Ident::new("__rejected", Span::mixed_site()),
    )
}

/// A loop around the inner layers, each attempt with its own copies of the arguments.
fn retry_layer(
    cx: &Ctx<'_>,
    index: usize,
    r: &RetryArgs,
    st: &Ident,
    inner: &TokenStream,
) -> TokenStream {
    let Ctx {
        input, p, stack, ..
    } = cx;
    let when = classify(p, r.when.as_ref());
    let (touch, rebinds) = retry_rebinds(p, &cx.params, input.receiver.as_ref());
    let retry = Ident::new("__retry", Span::mixed_site());
    let out = Ident::new("__out", Span::mixed_site());
    let attempt = Ident::new("__attempt", Span::mixed_site());
    let early = early_success(cx, index, &attempt);
    quote! {
        {
            #touch
            let mut #retry = #p::Retry::new(&#st, #stack);
            loop {
                #rebinds
                let #attempt = #inner;
                #early
                if let #p::Flow::Break(#out) = #retry.next(#attempt, #when) {
                    break #out;
                }
                if let #p::Flow::Break(#out) = #retry.pause().await {
                    break #out;
                }
            }
        }
    }
}

/// The inner layers, then the handler on an accepted error.
fn fallback_layer(
    cx: &Ctx<'_>,
    index: usize,
    f: &FallbackArgs,
    st: &Ident,
    inner: &TokenStream,
) -> TokenStream {
    let Ctx {
        input, p, stack, ..
    } = cx;
    let on = classify(p, f.on.as_ref());
    let (preclones, args) =
        fallback_args(p, &cx.params, f.args.as_deref(), input.receiver.as_ref());
    let out = Ident::new("__out", Span::mixed_site());
    let err = Ident::new("__err", Span::mixed_site());
    let handler = f
        .handler
        .as_ref()
        .map_or_else(|| quote!(missing_handler), |h| quote!(#h));
    // The handler's path as written, and the rest of the call at its last token, so a
    // signature mismatch is reported at the whole path (not at the attribute, nor at the
    // function's parameters).
    let (_, last) = first_last(&handler);
    let mut call = handler.clone();
    call.extend(located_at(quote!((#(#args,)* #err).await), last));
    let early = early_success(cx, index, &out);
    // The handler is awaited after the decision's `match`, not in one of its arms: a scrutinee
    // lives to the end of its `match`, so the decision (holding the success value) would be
    // held across the handler's `.await`, making the future `!Send` whenever `T` is.
    // Named after the static, so two fallbacks (with a retry between) have their own labels.
    let label = syn::Lifetime::new(
        &format!("'{}", st.to_string().to_lowercase()),
        Span::mixed_site(),
    );
    quote! {
        #label: {
            #preclones
            let #out = #inner;
            #early
            let #err = match #p::fallback(&#st, #stack, #on, #out) {
                #p::Flow::Break(#out) => break #label #out,
                #p::Flow::Continue(#err) => #err,
            };
            #p::lift(#call)
        }
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
    path.map_or_else(
        || quote!(#p::Every),
        |path| quote_spanned!(path.span()=> #p::Pred(#path)),
    )
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
    quote!(#p::Some(#d))
}

/// The number of fields of the runtime's `BreakerConfig` and `RetryConfig`. With every field
/// given, `..DEFAULT` would trip `clippy::needless_update` in the user's crate; a field added
/// to the runtime without updating these fails to compile in `tests/lints.rs`.
const BREAKER_CONFIG_FIELDS: usize = 9;
const RETRY_CONFIG_FIELDS: usize = 7;

fn breaker_config(
    p: &TokenStream,
    b: &BreakerArgs,
    inner_timeout: Option<Duration>,
) -> TokenStream {
    let count = |arg: &Option<crate::args::Sp<u32>>| arg.as_ref().map(|arg| arg.value);
    let time = |arg: &Option<crate::args::Sp<Duration>>| arg.as_ref().map(|arg| arg.value);
    let rate = b.failure_rate.as_ref().map(|r| r.value);
    let rule = match (count(&b.threshold), time(&b.window), rate, count(&b.last)) {
        (Some(threshold), None, _, _) => {
            let threshold = int(threshold);
            quote!(#p::TripRule::Consecutive { threshold: #threshold })
        }
        (Some(threshold), Some(window), _, _) => {
            let (threshold, window) = (int(threshold), dur(p, window));
            quote!(#p::TripRule::CountInWindow { threshold: #threshold, window: #window })
        }
        (None, None, None, None) if b.min_calls.is_none() => quote!(#p::TripRule::DEFAULT),
        (None, _, rate, Some(last)) => {
            let rate = float(rate.unwrap_or(0.5));
            let min = int(count(&b.min_calls).unwrap_or(last));
            let last = int(last);
            quote!(#p::TripRule::RateOverCalls { failure_rate: #rate, last: #last, min_calls: #min })
        }
        (None, window, rate, None) => {
            let rate = float(rate.unwrap_or(0.5));
            let window = dur(p, window.unwrap_or(Duration::from_secs(30)));
            let min = int(count(&b.min_calls).unwrap_or(20));
            quote!(#p::TripRule::RateOverTime { failure_rate: #rate, window: #window, min_calls: #min })
        }
    };
    let mut fields = vec![quote!(rule: #rule)];
    if let Some(cooldown) = time(&b.cooldown) {
        let cooldown = dur(p, cooldown);
        fields.push(quote!(cooldown: #cooldown));
    }
    if let Some(max) = time(&b.max_cooldown) {
        let max = some_dur(p, max);
        fields.push(quote!(max_cooldown: #max));
    }
    let successes = count(&b.success_threshold);
    if let Some(successes) = successes {
        let successes = int(successes);
        fields.push(quote!(success_threshold: #successes));
    }
    if let Some(trials) = count(&b.half_open_calls).or(successes) {
        let trials = int(trials);
        fields.push(quote!(half_open_calls: #trials));
    }
    if let Some(ramp) = time(&b.ramp) {
        let ramp = some_dur(p, ramp);
        fields.push(quote!(ramp: #ramp));
    }
    if let Some(slow) = time(&b.slow_call) {
        let slow = some_dur(p, slow);
        fields.push(quote!(slow_call: #slow));
    }
    if let Some(critical) = &b.critical {
        let critical = critical.value;
        fields.push(quote!(critical: #critical));
    }
    if let Some(limit) = inner_timeout {
        let limit = some_dur(p, limit);
        fields.push(quote!(inner_timeout: #limit));
    }
    let rest = (fields.len() < BREAKER_CONFIG_FIELDS).then(|| quote!(..#p::BreakerConfig::DEFAULT));
    quote!(#p::BreakerConfig { #(#fields,)* #rest })
}

fn bulkhead_config(p: &TokenStream, b: &BulkheadArgs) -> TokenStream {
    let pool = Literal::usize_unsuffixed(b.pool.as_ref().map_or(1, |s| s.value) as usize);
    let queue = Literal::usize_unsuffixed(b.queue.as_ref().map_or(0, |s| s.value) as usize);
    let max_wait = b
        .max_wait
        .as_ref()
        .map_or_else(|| quote!(#p::None), |w| some_dur(p, w.value));
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
    let rest = (fields.len() < RETRY_CONFIG_FIELDS).then(|| quote!(..#p::RetryConfig::DEFAULT));
    quote!(#p::RetryConfig { #(#fields,)* #rest })
}

/// Per attempt: clone what is owned (spanned at the parameter, so a missing `Clone` lands
/// there), reborrow what is `&mut`.
fn retry_rebinds(
    p: &TokenStream,
    params: &[Param],
    receiver: Option<&Ident>,
) -> (TokenStream, TokenStream) {
    let mut out = TokenStream::new();
    // A `mut` parameter is only read (cloned) now, each attempt mutating its own copy; one
    // mutable borrow keeps `unused_mut` from firing on the user's `mut`.
    let mut touch = TokenStream::new();
    for param in params {
        match param {
            Param::Owned {
                ident,
                mutable: true,
                ..
            } => touch.extend(quote!(let _ = &mut #ident;)),
            Param::Pattern { bindings, .. } => {
                for (ident, _) in bindings.iter().filter(|(_, m)| *m) {
                    touch.extend(quote!(let _ = &mut #ident;));
                }
            }
            _ => {}
        }
    }
    for param in params {
        match param {
            // `self` cannot be rebound, but async-trait's `__self` can.
            Param::RefSelf { mutable: true } => {
                if let Some(r) = receiver {
                    out.extend(quote!(let #r = &mut *#r;));
                }
            }
            Param::Unique(ident) => out.extend(quote!(let #ident = &mut *#ident;)),
            Param::Owned {
                ident,
                mutable,
                span,
            } => {
                let m = mutable.then(|| quote!(mut));
                out.extend(quote_spanned!(*span=> let #m #ident = #p::clone_arg(&#ident);));
            }
            Param::Pattern { bindings, span } => {
                for (ident, mutable) in bindings {
                    let m = mutable.then(|| quote!(mut));
                    out.extend(quote_spanned!(*span=> let #m #ident = #p::clone_arg(&#ident);));
                }
            }
            Param::RefSelf { mutable: false }
            | Param::TypedSelf
            | Param::OwnedSelf(_)
            | Param::Shared(_)
            | Param::Wild(_) => {}
        }
    }
    (touch, out)
}

/// Clones taken before the primary call, and the handler's argument list.
fn fallback_args(
    p: &TokenStream,
    params: &[Param],
    only: Option<&[Ident]>,
    receiver: Option<&Ident>,
) -> (TokenStream, Vec<TokenStream>) {
    let this = receiver.map_or_else(|| quote!(self), |r| quote!(#r));
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
            Param::RefSelf { .. } => args.push(this.clone()),
            Param::TypedSelf | Param::OwnedSelf(_) => {
                let copy = Ident::new("__fb_self", Span::mixed_site());
                pre.extend(quote!(let #copy = #p::clone_arg(&#this);));
                args.push(quote!(#copy));
            }
            Param::Shared(ident) | Param::Unique(ident) => args.push(quote!(#ident)),
            Param::Owned { ident, span, .. } => {
                let copy = Ident::new(&format!("__fb_{ident}"), Span::mixed_site());
                pre.extend(quote_spanned!(*span=> let #copy = #p::clone_arg(&#ident);));
                args.push(quote!(#copy));
            }
            Param::Pattern { .. } | Param::Wild(_) => {}
        }
    }
    (pre, args)
}
