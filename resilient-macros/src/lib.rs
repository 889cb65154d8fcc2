//! Attribute macros of `resilient`. Depend on the `resilient` crate, which re-exports them
//! and documents them; this crate only parses, validates and expands.
//!
//! Each attribute absorbs the other resilience attributes on the same function and emits one
//! expansion in source order (the attribute written first is the outermost layer).

mod args;
mod entry;
mod errors;
mod expand;
mod item;
mod params;
mod validate;

#[cfg(test)]
mod expand_tests;

#[path = "../../resilient-runtime/src/literal.rs"]
mod literal;

use proc_macro::TokenStream;

use args::Kind;

/// `#[circuit_breaker(...)]`: see the `resilient` crate.
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Kind::CircuitBreaker, args.into(), item.into()).into()
}

/// `#[timeout("200ms")]`: see the `resilient` crate.
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Kind::Timeout, args.into(), item.into()).into()
}

/// `#[bulkhead(pool = 10)]`: see the `resilient` crate.
#[proc_macro_attribute]
pub fn bulkhead(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Kind::Bulkhead, args.into(), item.into()).into()
}

/// `#[retry(attempts = 3)]`: see the `resilient` crate.
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Kind::Retry, args.into(), item.into()).into()
}

/// `#[fallback(handler)]`: see the `resilient` crate.
#[proc_macro_attribute]
pub fn fallback(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Kind::Fallback, args.into(), item.into()).into()
}
