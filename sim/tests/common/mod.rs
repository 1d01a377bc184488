//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// `shared/histories` beside the checkout, if present; says so when it is not.
pub fn histories() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories");
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} is absent (CI places shared/ beside the checkout)", path.display());
        None
    }
}
