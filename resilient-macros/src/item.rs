//! The annotated function, parsed leniently: attributes, visibility and signature strictly,
//! the body kept as tokens so a half-typed body still expands (and rust-analyzer keeps
//! working).

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Signature, Token, Visibility};

pub(crate) struct ItemFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    /// `{ ... }`: inner attributes lifted out, the rest as tokens.
    Block {
        brace: Group,
        inner_attrs: Vec<Attribute>,
        stmts: TokenStream,
    },
    /// `;`: a trait method declaration.
    Semi(Token![;]),
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body = if input.peek(Token![;]) {
            Body::Semi(input.parse()?)
        } else {
            let brace = match input.parse()? {
                TokenTree::Group(g) => unwrap_invisible(g),
                other => return Err(syn::Error::new(other.span(), "expected the function body")),
            };
            if brace.delimiter() != Delimiter::Brace {
                return Err(syn::Error::new(brace.span(), "expected the function body"));
            }
            let (inner_attrs, stmts) = split_inner_attrs(brace.stream());
            Body::Block {
                brace,
                inner_attrs,
                stmts,
            }
        };
        Ok(ItemFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

/// A body passed through `macro_rules!` as a `$body:block` fragment arrives wrapped in an
/// invisible (`None`-delimited) group; the braces are inside it.
fn unwrap_invisible(group: Group) -> Group {
    if group.delimiter() != Delimiter::None {
        return group;
    }
    let mut inner = group.stream().into_iter();
    match (inner.next(), inner.next()) {
        (Some(TokenTree::Group(g)), None) => unwrap_invisible(g),
        _ => group,
    }
}

/// Leading `#![...]` attributes of a body, without requiring the rest to parse.
fn split_inner_attrs(stream: TokenStream) -> (Vec<Attribute>, TokenStream) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut attrs = Vec::new();
    let mut i = 0;
    while let (Some(TokenTree::Punct(p)), Some(TokenTree::Punct(bang)), Some(TokenTree::Group(g))) =
        (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2))
    {
        if p.as_char() != '#' || bang.as_char() != '!' || g.delimiter() != Delimiter::Bracket {
            break;
        }
        let attr_tokens: TokenStream = tokens[i..i + 3].iter().cloned().collect();
        match syn::parse::Parser::parse2(Attribute::parse_inner, attr_tokens) {
            Ok(mut parsed) => {
                for a in &mut parsed {
                    a.style = syn::AttrStyle::Outer;
                }
                attrs.extend(parsed);
            }
            Err(_) => break,
        }
        i += 3;
    }
    (attrs, tokens[i..].iter().cloned().collect())
}

impl ToTokens for ItemFn {
    fn to_tokens(&self, out: &mut TokenStream) {
        for a in &self.attrs {
            a.to_tokens(out);
        }
        self.vis.to_tokens(out);
        self.sig.to_tokens(out);
        match &self.body {
            Body::Block {
                brace,
                inner_attrs,
                stmts,
            } => {
                let mut inner = TokenStream::new();
                for a in inner_attrs {
                    // Re-emit as inner attributes, where they were.
                    let mut a = a.clone();
                    a.style = syn::AttrStyle::Inner(Token![!](brace.span()));
                    a.to_tokens(&mut inner);
                }
                inner.extend(stmts.clone());
                let mut g = Group::new(Delimiter::Brace, inner);
                g.set_span(brace.span());
                g.to_tokens(out);
            }
            Body::Semi(s) => s.to_tokens(out),
        }
    }
}
