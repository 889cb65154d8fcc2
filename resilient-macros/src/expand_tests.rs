//! Expansion snapshots: what `cargo expand` shows users, pinned with insta.
//! Review changes with `cargo insta review` or `INSTA_UPDATE=always cargo test -p resilient-macros`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::args::Kind;

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

#[test]
fn single_timeout() {
    let out = crate::entry::expand(
        Kind::Timeout,
        quote!("200ms"),
        quote! {
            async fn profile(user: UserId) -> Result<Profile, ApiError> {
                client().get(user).await
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn full_stack() {
    let out = crate::entry::expand(
        Kind::Fallback,
        quote!(popular_items),
        quote! {
            #[retry(attempts = 2, backoff = "50ms")]
            #[circuit_breaker(failure_rate = 0.5, window = "10s", cooldown = "5s")]
            #[timeout("200ms")]
            #[bulkhead(pool = 10)]
            async fn recommendations(user: UserId) -> Result<Vec<Item>, ApiError> {
                http_get(user).await
            }
        },
    );
    let text = pretty(out);
    insta::assert_snapshot!(text);
}

#[test]
fn errors_keep_the_function() {
    let out = crate::entry::expand(
        Kind::Timeout,
        quote!("20O ms"),
        quote! {
            async fn f() -> Result<(), E> { Ok(()) }
        },
    );
    let text = out.to_string();
    assert!(text.contains("async fn f"), "{text}");
    assert!(text.contains("compile_error"), "{text}");
}
