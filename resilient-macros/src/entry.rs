//! The driver: lenient item parse, absorb sibling policy attributes, parse, validate, expand.
//! On any error the original function is re-emitted (without the policies) next to the
//! errors, so callers still type-check and rust-analyzer keeps working.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Expr, Meta, Path};

use crate::args::{self, Kind, Policy};
use crate::errors::Errors;
use crate::expand;
use crate::item::{Body, ItemFn};
use crate::validate;

pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item: ItemFn = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!("`#[{}]` applies to an `async fn`: {e}", kind.attr_name()),
            );
            let mut out = item;
            out.extend(e.into_compile_error());
            return out;
        }
    };
    let mut errors = Errors::default();
    let first = args::parse(kind, Span::call_site(), args, &mut errors);
    let mut policies = vec![first];
    let absorbed = absorb_siblings(&mut item, &mut policies, &mut errors);

    let async_trait = async_trait_body(&item);
    let mut warnings = Vec::new();
    validate::stack(&policies, &mut errors, &mut warnings);
    validate::signature(&item, &policies, kind, async_trait.is_some(), &mut errors);

    let krate = policies
        .iter()
        .find_map(|p| p.krate.as_ref())
        .map_or_else(|| quote!(::resilient), ToTokens::to_token_stream);

    if errors.has_any() {
        let mut out = item.to_token_stream();
        for e in errors.take() {
            out.extend(e.into_compile_error());
        }
        return out;
    }
    let Body::Block {
        brace,
        inner_attrs,
        stmts,
    } = &item.body
    else {
        return item.to_token_stream();
    };
    let (body, body_span) = match &async_trait {
        Some(inner) => (inner.block.stmts_tokens(), inner.span),
        None => (stmts.clone(), brace.span()),
    };
    let new_body = expand::body(&expand::Input {
        krate,
        sig: &item.sig,
        policies: &policies,
        warnings: &warnings,
        body,
        body_span,
    });
    let new_body = match &async_trait {
        Some(inner) => {
            let pin = &inner.pin_path;
            quote!(#pin(async move { #new_body }))
        }
        None => new_body,
    };
    let new_body = quote! {
        #(#[allow(unused_imports)] use #absorbed as _;)*
        #new_body
    };
    let ItemFn { attrs, vis, sig, .. } = &item;
    let mut out = quote!(#(#attrs)* #(#inner_attrs)* #vis #sig);
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, new_body);
    group.set_span(brace.span());
    out.extend(group.into_token_stream());
    out
}

/// Removes every sibling resilience attribute, in source order, and parses it. Returns their
/// paths: the expansion mentions them so the user's `use resilient::timeout;` stays used.
fn absorb_siblings(item: &mut ItemFn, policies: &mut Vec<Policy>, errors: &mut Errors) -> Vec<Path> {
    let mut paths = Vec::new();
    let krate: Option<Path> = policies[0].krate.clone();
    let mut kept = Vec::with_capacity(item.attrs.len());
    for attr in std::mem::take(&mut item.attrs) {
        let Some(kind) = policy_kind(attr.path(), krate.as_ref()) else {
            kept.push(attr);
            continue;
        };
        let span = attr.path().span();
        paths.push(attr.path().clone());
        let tokens = match &attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(nv) => {
                errors.push(syn::Error::new(
                    nv.eq_token.span,
                    format!("write `#[{}(...)]`", kind.attr_name()),
                ));
                continue;
            }
        };
        policies.push(args::parse(kind, span, tokens, errors));
    }
    item.attrs = kept;
    paths
}

/// `timeout`, `resilient::timeout`, `::resilient::timeout`, or `<crate override>::timeout`.
fn policy_kind(path: &Path, krate: Option<&Path>) -> Option<Kind> {
    let last = path.segments.last()?;
    let kind = Kind::ALL
        .into_iter()
        .find(|k| last.ident == k.attr_name())?;
    let prefix: Vec<String> = path
        .segments
        .iter()
        .take(path.segments.len() - 1)
        .map(|s| s.ident.to_string())
        .collect();
    let matches_crate = krate.is_some_and(|k| {
        k.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>() == prefix
    });
    (prefix.is_empty() || prefix == ["resilient"] || matches_crate).then_some(kind)
}

/// The `async move` block inside an `#[async_trait]` method's `Box::pin(..)`.
pub(crate) struct AsyncTraitBody {
    pin_path: TokenStream,
    block: syn::Block,
    span: Span,
}

trait StmtsTokens {
    fn stmts_tokens(&self) -> TokenStream;
}

impl StmtsTokens for syn::Block {
    fn stmts_tokens(&self) -> TokenStream {
        let stmts = &self.stmts;
        quote!(#(#stmts)*)
    }
}

fn async_trait_body(item: &ItemFn) -> Option<AsyncTraitBody> {
    if item.sig.asyncness.is_some() {
        return None;
    }
    let Body::Block { stmts, .. } = &item.body else {
        return None;
    };
    let Ok(Expr::Call(call)) = syn::parse2::<Expr>(stmts.clone()) else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    if func.path.segments.last()?.ident != "pin" || call.args.len() != 1 {
        return None;
    }
    let Some(Expr::Async(block)) = call.args.first() else {
        return None;
    };
    block.capture?;
    Some(AsyncTraitBody {
        pin_path: func.to_token_stream(),
        span: block.block.brace_token.span.join(),
        block: block.block.clone(),
    })
}
