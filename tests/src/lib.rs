//! The shared harness of the end-to-end tests: a temp dir, a command for a
//! built binary, free loopback ports, and real peers started with their own
//! config (never Debian's /etc one).
//!
//! `cargo xtask test` builds the binaries before running these tests; a peer
//! that is missing fails the test under CI (`CI=true`) and skips it loudly on a
//! laptop.

pub mod basic_auth;
pub mod fixtures;
pub mod http;
pub mod peers;
pub mod pki;
pub mod proxy;
pub mod token;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The directory holding the workspace's built binaries (`target/debug`), or
/// `OCIKIT_BIN_DIR` when set (the sigstore interop crate has a target dir of
/// its own and points this at the main workspace's).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OCIKIT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test>-<hash> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A command for one of the workspace's binaries, built by `cargo xtask test`.
pub fn tool(name: &str) -> assert_cmd::Command {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo xtask test` (it builds the binaries first)",
        path.display()
    );
    let mut cmd = assert_cmd::Command::new(path);
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Where a peer program is, or `None` (after a loud message) when it is
/// missing on a developer machine. Under CI a missing peer fails the test.
pub fn require(program: &str) -> Option<PathBuf> {
    if let Some(path) = which(program) {
        return Some(path);
    }
    let message = format!(
        "peer `{program}` is not installed; `.ci/run` installs it (apt-get install {})",
        debian_package(program)
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("\n*** SKIPPING: {message} ***\n");
    None
}

fn debian_package(program: &str) -> &str {
    match program {
        "htpasswd" => "apache2-utils",
        "busybox" => "busybox-static",
        "ctr" => "containerd",
        other => other,
    }
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A free loopback port (bound and released; good enough for tests that start
/// their server right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ocikit-e2e-")
        .tempdir()
        .expect("temp dir")
}
