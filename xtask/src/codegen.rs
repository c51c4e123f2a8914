//! Man pages and shell completions, generated from each tool's clap command so
//! that help, man page and completion never drift apart.
//!
//! Every file goes through [`ensure_file_contents`]: in check mode a stale file
//! is an error (CI and the `#[test]` below), otherwise it is rewritten.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap_complete::Shell;

/// The tools whose man pages and completions are generated. Each entry is the
/// tool's own `command()`, so a new tool adds one line here.
fn commands() -> Vec<clap::Command> {
    vec![
        oci_build::command(),
        oci_copy::command(),
        oci_inspect::command(),
        oci_serve::command(),
        oci_sign::command(),
        oci_verify::command(),
    ]
}

/// Generates (or, with `check`, verifies) every man page and completion.
pub fn run(check: bool) -> Result<()> {
    let root = crate::project_root();
    let mut stale = Vec::new();
    for command in commands() {
        let name = command.get_name().to_owned();
        let man = render_man(&command)?;
        ensure_file_contents(
            &root.join("man").join(format!("{name}.1")),
            &man,
            check,
            &mut stale,
        )?;
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let text = render_completion(command.clone(), shell);
            ensure_file_contents(
                &root.join("completions").join(file),
                &text,
                check,
                &mut stale,
            )?;
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated files are stale, run `cargo xtask codegen`: {}",
            stale.join(", ")
        );
    }
    Ok(())
}

fn render_man(command: &clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    Ok(out)
}

fn render_completion(mut command: clap::Command, shell: Shell) -> Vec<u8> {
    let name = command.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut out);
    out
}

/// Writes `contents` to `path` unless it already holds them; in check mode,
/// records the path as stale instead of writing.
fn ensure_file_contents(
    path: &Path,
    contents: &[u8],
    check: bool,
    stale: &mut Vec<String>,
) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    if check {
        stale.push(path.display().to_string());
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn generated_files_are_fresh() {
        super::run(true).expect("run `cargo xtask codegen` and commit the result");
    }

    /// Flags whose names follow the tool each ocikit tool replaces (DESIGN.md:
    /// "flag and config names follow the tool being replaced") and so mean
    /// different things: `skopeo inspect --config` prints an image's config,
    /// `zot --config` names a config file; and `--dry-run`, whose help says
    /// what each tool would have done (oci-build's plan, oci-serve gc's list);
    /// `--all` is `skopeo copy --all` in oci-copy and `stacker clean --all`
    /// (a no-op kept for old scripts) in oci-build clean.
    const NAMED_BY_THE_REPLACED_TOOL: [&str; 3] = ["config", "dry-run", "all"];

    /// Every long flag with a given name means the same in every tool (same
    /// help text), so `--authfile` or `--quiet` never drift apart; each tool's
    /// command is also checked by clap's own debug assertions.
    #[test]
    fn shared_flags_keep_one_meaning_across_tools() {
        let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut clashes = Vec::new();
        for command in super::commands() {
            command.clone().debug_assert();
            for (path, arg) in all_args(&command) {
                let (Some(long), Some(help)) = (arg.get_long(), arg.get_help()) else {
                    continue;
                };
                let help = help.to_string();
                if NAMED_BY_THE_REPLACED_TOOL.contains(&long) {
                    continue;
                }
                match seen.get(long) {
                    Some((other, first)) if *first != help => clashes.push(format!(
                        "--{long}: {other} says {first:?}, {path} says {help:?}"
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(long.to_owned(), (path, help));
                    }
                }
            }
        }
        assert!(
            clashes.is_empty(),
            "one flag name, one meaning:\n{}",
            clashes.join("\n")
        );
    }

    fn all_args(command: &clap::Command) -> Vec<(String, clap::Arg)> {
        let mut out: Vec<(String, clap::Arg)> = command
            .get_arguments()
            .map(|a| (command.get_name().to_owned(), a.clone()))
            .collect();
        for sub in command.get_subcommands() {
            for (path, arg) in all_args(sub) {
                out.push((format!("{} {path}", command.get_name()), arg));
            }
        }
        out
    }
}
