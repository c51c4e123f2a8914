//! `cargo xtask`: the project's own tasks, one module each.
//!
//! - `codegen [--check]`: man pages and shell completions from the tools' clap commands;
//! - `demo`: builds the tools and runs the main job on a small image, no config, no server;
//! - `bench <topic>`: ocikit against the peer it replaces, as ratios;
//! - `test`: every test, the command the README shows and `.ci/run` calls.

mod bench;
mod codegen;
mod demo;
mod test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("codegen") => codegen::run(args[1..].iter().any(|a| a == "--check")),
        Some("test") => test::run(&args[1..]),
        Some("demo") => demo::run(),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <demo | codegen [--check] | test [ARGS…] | bench TOPIC>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root, whatever directory cargo was started in.
pub fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}
