//! The `dso-server` executable the real-process tests start.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `dso-server` of this build: next to the test's own directory (`target/<profile>`),
/// built first (with S3 discovery) if it is not there or was built without it.
pub fn dso_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let server = profile_dir.join("dso-server");
    let speaks_s3 = || {
        let version = Command::new(&server).arg("--version").output();
        version.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("discovery: file, s3"))
    };
    if !speaks_s3() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "crucial-dso", "--bin", "dso-server", "--features", "s3"])
            .status()
            .unwrap();
        assert!(status.success(), "building dso-server failed");
    }
    server
}
