//! Compile-time tests of the attributes: every supported function shape compiles and runs
//! (`tests/ui/pass`), and every bad input from DESIGN.md is a clear compile error pointing at
//! the user's token (`tests/ui/fail`, with `.stderr` snapshots).
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test --test ui`, then review every
//! changed `.stderr`: the message must say what was found and what is expected, and the span
//! must be the user's argument, not the attribute. Snapshots are tied to the stable rustc of
//! the machine that generated them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
