//! What the layers of one stack pass to each other.

use crate::Error;

/// The error side of a call inside a stack of policies: either the body's own error or a
/// rejection by a policy. Keeping the two apart until the outermost layer lets a retry tell an
/// open circuit (never retried) from the body's error, and a breaker tell an inner bulkhead's
/// rejection (not recorded) from a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<E> {
    /// The body returned `Err`.
    Failed(E),
    /// A policy refused or abandoned the call.
    Rejected(Error),
}

impl<E> Outcome<E> {
    /// The call never reached the dependency: a layer inside turned it away (`CircuitOpen`,
    /// `BulkheadFull`) or there was no runtime to run it on (`NoRuntime`). A breaker does not
    /// record such a call, and a retry does not repeat it (retrying an overloaded dependency
    /// is how retry storms start; without a runtime no attempt can succeed).
    pub(crate) fn never_reached_dependency(&self) -> bool {
        matches!(
            self,
            Outcome::Rejected(
                Error::CircuitOpen { .. } | Error::BulkheadFull { .. } | Error::NoRuntime { .. }
            )
        )
    }
}

impl<E: From<Error>> Outcome<E> {
    /// The error the caller sees: the body's own, or the rejection converted.
    pub fn into_inner(self) -> E {
        match self {
            Outcome::Failed(e) => e,
            Outcome::Rejected(r) => E::from(r),
        }
    }
}
