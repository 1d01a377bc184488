//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// `shared/histories` beside the checkout, if present; says so when it is not. Under CI (`CI`
/// set), where it must be present, its absence fails the test instead of skipping it.
pub fn histories() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories");
    if path.is_dir() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is absent, and CI places shared/ beside the checkout", path.display());
    } else {
        eprintln!("SKIPPED: {} is absent (CI places shared/ beside the checkout)", path.display());
        None
    }
}
