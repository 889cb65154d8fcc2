//! An accumulator for every error of one expansion, so users see them all at once.

/// Collected errors. Emitted together by `into_compile_error`.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        self.0.push(e);
    }

    pub(crate) fn has_any(&self) -> bool {
        !self.0.is_empty()
    }

    pub(crate) fn take(&mut self) -> Vec<syn::Error> {
        std::mem::take(&mut self.0)
    }
}
