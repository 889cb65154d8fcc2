//! The driver: lenient item parse, absorb sibling policy attributes, parse, validate, expand.
//! On any error the original function is re-emitted (without the policies) next to the
//! errors, so callers still type-check and rust-analyzer keeps working.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Meta, Pat, Path, Stmt};

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
            let mut out = without_policies(&args, item);
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
        // The function as written, without its policies; the marker `use`s keep the user's
        // imports of the absorbed attributes from being reported unused on top of the errors.
        if let Body::Block { stmts, .. } = &mut item.body {
            *stmts = quote! {
                #(#[allow(unused_imports)] use #absorbed as _;)*
                #stmts
            };
        }
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
        receiver: async_trait
            .as_ref()
            .and_then(|a| a.receiver.as_ref().map(|(_, r)| r.clone())),
        async_trait: async_trait.is_some(),
    });
    let new_body = match &async_trait {
        Some(inner) => {
            let pin = &inner.pin_path;
            let self_decl = inner.receiver.as_ref().map(|(decl, _)| decl);
            quote!(#pin(async move { #self_decl #new_body }))
        }
        None => new_body,
    };
    // Mention the absorbed attributes so the user's `use resilient::timeout;` stays used.
    let marks = if absorbed.is_empty() {
        TokenStream::new()
    } else if absorbed.iter().all(|p| p.leading_colon.is_none()) {
        quote!(#[allow(unused_imports)] use {#(#absorbed as _),*};)
    } else {
        quote!(#(#[allow(unused_imports)] use #absorbed as _;)*)
    };
    let new_body = quote! {
        #marks
        #new_body
    };
    let ItemFn {
        attrs, vis, sig, ..
    } = &item;
    let mut out = quote!(#(#attrs)* #(#inner_attrs)* #vis #sig);
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, new_body);
    group.set_span(brace.span());
    out.extend(group.into_token_stream());
    out
}

/// An item that is not a function, as given but without its other resilience attributes,
/// which would each report the same error again.
fn without_policies(args: &TokenStream, item: TokenStream) -> TokenStream {
    let split = |input: syn::parse::ParseStream<'_>| {
        Ok((
            input.call(Attribute::parse_outer)?,
            input.parse::<TokenStream>()?,
        ))
    };
    let Ok((attrs, rest)) = syn::parse::Parser::parse2(split, item.clone()) else {
        return item;
    };
    let crates = policy_crates(args::declared_crate(args.clone()).as_ref(), &attrs);
    let attrs = attrs
        .iter()
        .filter(|a| policy_kind(a.path(), &crates).is_none());
    quote!(#(#attrs)* #rest)
}

/// The path prefixes under which a sibling attribute is one of ours: bare, `resilient`, and
/// every `crate = ".."` override declared by the expanding attribute or by a sibling written
/// under that same prefix (so `#[rs::retry(crate = "rs")] #[rs::timeout("1s")]` and the
/// reverse both compose).
fn policy_crates(first: Option<&Path>, attrs: &[Attribute]) -> Vec<Vec<String>> {
    let mut crates: Vec<Vec<String>> = first.iter().map(|p| segments(p)).collect();
    for attr in attrs {
        if let (Some((_, prefix)), Meta::List(list)) = (split(attr.path()), &attr.meta)
            && let Some(declared) = args::declared_crate(list.tokens.clone())
            && segments(&declared) == prefix
        {
            crates.push(prefix);
        }
    }
    crates
}

/// Removes every sibling resilience attribute, in source order, and parses it. Returns their
/// paths: the expansion mentions them so the user's `use resilient::timeout;` stays used.
fn absorb_siblings(
    item: &mut ItemFn,
    policies: &mut Vec<Policy>,
    errors: &mut Errors,
) -> Vec<Path> {
    let crates = policy_crates(policies[0].krate.as_ref(), &item.attrs);
    let mut paths = Vec::new();
    let mut kept = Vec::with_capacity(item.attrs.len());
    for attr in std::mem::take(&mut item.attrs) {
        let Some(kind) = policy_kind(attr.path(), &crates) else {
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

/// A path's segments, without a leading `crate` or `self` (`crate::facade` and `facade`
/// name the same module from the crate root).
fn segments(path: &Path) -> Vec<String> {
    let mut s: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    if s.first().is_some_and(|f| f == "crate" || f == "self") {
        s.remove(0);
    }
    s
}

/// `prefix::timeout` -> (`Timeout`, prefix segments), for the five policy names.
fn split(path: &Path) -> Option<(Kind, Vec<String>)> {
    let last = path.segments.last()?;
    let kind = Kind::ALL
        .into_iter()
        .find(|k| last.ident == k.attr_name())?;
    let mut prefix = segments(path);
    prefix.pop();
    Some((kind, prefix))
}

/// `timeout`, `resilient::timeout`, `::resilient::timeout`, or `<crate override>::timeout`.
fn policy_kind(path: &Path, crates: &[Vec<String>]) -> Option<Kind> {
    let (kind, prefix) = split(path)?;
    (prefix.is_empty() || prefix == ["resilient"] || crates.contains(&prefix)).then_some(kind)
}

/// The `async move` block inside an `#[async_trait]` method's `Box::pin(..)`.
pub(crate) struct AsyncTraitBody {
    pin_path: TokenStream,
    block: syn::Block,
    span: Span,
    /// async-trait's `let __self = self;`, taken out of the block so that it runs once per
    /// call (before any retry loop), with the `__self` ident the body refers to.
    receiver: Option<(syn::Stmt, Ident)>,
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
    let mut inner = block.block.clone();
    let receiver = inner
        .stmts
        .iter()
        .position(|s| self_decl(s).is_some())
        .and_then(|i| {
            let stmt = inner.stmts.remove(i);
            let ident = self_decl(&stmt)?.clone();
            Some((stmt, ident))
        });
    Some(AsyncTraitBody {
        pin_path: func.to_token_stream(),
        span: block.block.brace_token.span.join(),
        block: inner,
        receiver,
    })
}

/// async-trait's `let [mut] __self = self;`: returns `__self`.
fn self_decl(stmt: &Stmt) -> Option<&Ident> {
    let Stmt::Local(local) = stmt else {
        return None;
    };
    let Pat::Ident(pat) = &local.pat else {
        return None;
    };
    let init = local.init.as_ref()?;
    let Expr::Path(path) = &*init.expr else {
        return None;
    };
    (pat.ident == "__self" && init.diverge.is_none() && path.path.is_ident("self"))
        .then_some(&pat.ident)
}
