//! `#[shared]` refuses what it cannot turn into a shared object type with the message it
//! promises, pointing at the offending code (compile-fail cases in `tests/ui/`).

#![cfg(not(madsim))]

#[test]
fn shared_explains_what_it_cannot_accept() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
