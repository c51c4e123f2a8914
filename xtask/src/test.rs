//! `cargo xtask test`: every test, in the order that fails fastest.
//!
//! The end-to-end tests drive the tools' binaries, which `cargo test` does not
//! build for another package, so the binaries are built first. Extra arguments
//! go to `cargo test` (e.g. a test-name filter). Last come the sigstore-rs
//! interop tests, a crate with its own workspace and target dir (its cold
//! build takes minutes), driving the binaries built here; a developer
//! iterating elsewhere may set `OCIKIT_SKIP_INTEROP=1` to leave them out
//! (CI never does). A full run (no filter) also runs `cargo xtask demo`, so
//! the README's first command is checked on every CI machine.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Builds the binaries, then runs the whole workspace's tests.
pub fn run(extra: &[String]) -> Result<()> {
    let root = crate::project_root();
    cargo(&root, &["build", "--workspace", "--bins"])?;
    let mut test = vec!["test", "--workspace"];
    test.extend(extra.iter().map(String::as_str));
    cargo(&root, &test)?;
    if extra.is_empty() {
        crate::demo::run().context("cargo xtask demo")?;
    }
    if std::env::var_os("OCIKIT_SKIP_INTEROP").is_some() {
        eprintln!("xtask: OCIKIT_SKIP_INTEROP is set: NOT running the sigstore-rs interop tests");
        return Ok(());
    }
    let bin_dir = root.join("target").join("debug");
    let mut interop = vec!["test", "--manifest-path", "interop/sigstore/Cargo.toml"];
    interop.extend(extra.iter().map(String::as_str));
    cargo_with_env(&root, &interop, &[("OCIKIT_BIN_DIR", bin_dir.as_os_str())])
}

/// Runs cargo in `root`, failing on a non-zero exit.
pub(crate) fn cargo(root: &std::path::Path, args: &[&str]) -> Result<()> {
    cargo_with_env(root, args, &[])
}

fn cargo_with_env(
    root: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
