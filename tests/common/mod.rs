//! Helpers shared by the integration tests. Each test binary uses only some of them.
#![allow(dead_code, unreachable_pub)]

pub(crate) mod capture;

/// `n` milliseconds.
pub(crate) const fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// The error type of tests that need the body's own error and a rejection apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum E {
    /// The body failed.
    Body,
    /// A policy rejected or abandoned the call.
    R(resilient::Error),
}

impl From<resilient::Error> for E {
    fn from(e: resilient::Error) -> Self {
        E::R(e)
    }
}
