//! What `#[retry]` and `#[fallback]` need to know about each parameter: how to give every
//! attempt (or the handler) its own copy.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, ReceiverKind, Signature, Type};

pub(crate) enum Param {
    /// `&self` or `&mut self`: reborrowed.
    RefSelf { mutable: bool },
    /// `self: Arc<Self>` and other typed receivers: cloned for the handler.
    TypedSelf,
    /// `self` / `mut self`: moved by the body.
    OwnedSelf(Span),
    /// `x: &T`: copied.
    Shared(Ident),
    /// `x: &mut T`: reborrowed.
    Unique(Ident),
    /// `x: T`: cloned.
    Owned {
        ident: Ident,
        mutable: bool,
        span: Span,
    },
    /// `(a, b): (A, B)` and other patterns: each binding cloned per attempt.
    Pattern {
        bindings: Vec<(Ident, bool)>,
        span: Span,
    },
    /// `_: T`.
    Wild(Span),
}

pub(crate) fn analyse(sig: &Signature) -> Vec<Param> {
    sig.inputs
        .iter()
        .map(|arg| match arg {
            FnArg::Receiver(r) => match &r.kind {
                ReceiverKind::Reference(_, _, mutability) => Param::RefSelf {
                    mutable: mutability.is_some(),
                },
                ReceiverKind::Value => Param::OwnedSelf(r.self_token.span),
                ReceiverKind::Typed(_, ty) => match &**ty {
                    Type::Reference(r) => Param::RefSelf {
                        mutable: r.mutability.is_some(),
                    },
                    _ => Param::TypedSelf,
                },
                _ => Param::TypedSelf,
            },
            FnArg::Typed(t) => match (&*t.pat, &*t.ty) {
                (Pat::Ident(p), Type::Reference(r)) if p.subpat.is_none() && p.by_ref.is_none() => {
                    if r.mutability.is_some() {
                        Param::Unique(p.ident.clone())
                    } else {
                        Param::Shared(p.ident.clone())
                    }
                }
                (Pat::Ident(p), _) if p.subpat.is_none() => Param::Owned {
                    ident: p.ident.clone(),
                    mutable: p.mutability.is_some(),
                    span: t.span(),
                },
                (Pat::Wild(w), _) => Param::Wild(w.span()),
                (pat, _) => {
                    let mut bindings = Vec::new();
                    collect_bindings(pat, &mut bindings);
                    Param::Pattern {
                        bindings,
                        span: t.span(),
                    }
                }
            },
        })
        .collect()
}

fn collect_bindings(pat: &Pat, out: &mut Vec<(Ident, bool)>) {
    match pat {
        Pat::Ident(p) => {
            out.push((p.ident.clone(), p.mutability.is_some()));
            if let Some((_, sub)) = &p.subpat {
                collect_bindings(sub, out);
            }
        }
        Pat::Tuple(t) => t.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| collect_bindings(&f.pat, out)),
        Pat::Slice(s) => s.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Reference(r) => collect_bindings(&r.pat, out),
        Pat::Paren(p) => collect_bindings(&p.pat, out),
        Pat::Type(t) => collect_bindings(&t.pat, out),
        Pat::Or(o) => {
            if let Some(first) = o.cases.first() {
                collect_bindings(first, out);
            }
        }
        _ => {}
    }
}

impl Param {
    /// The name the parameter is known by, if it has one.
    pub(crate) fn name(&self) -> Option<String> {
        match self {
            Param::RefSelf { .. } | Param::TypedSelf | Param::OwnedSelf(_) => Some("self".into()),
            Param::Shared(i) | Param::Unique(i) | Param::Owned { ident: i, .. } => {
                Some(i.to_string())
            }
            Param::Pattern { .. } | Param::Wild(_) => None,
        }
    }
}
