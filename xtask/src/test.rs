//! `cargo xtask test`: every test, in the order that fails fastest.
//!
//! The end-to-end tests drive the tools' binaries, which `cargo test` does not
//! build for another package, so the binaries are built first. Extra arguments
//! go to `cargo test` (e.g. a test-name filter).

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Builds the binaries, then runs the whole workspace's tests.
pub fn run(extra: &[String]) -> Result<()> {
    let root = crate::project_root();
    cargo(&root, &["build", "--workspace", "--bins"])?;
    let mut test = vec!["test", "--workspace"];
    test.extend(extra.iter().map(String::as_str));
    cargo(&root, &test)
}

fn cargo(root: &std::path::Path, args: &[&str]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
