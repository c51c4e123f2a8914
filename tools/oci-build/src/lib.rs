//! oci-build: builds the images of a stacker.yaml into an OCI image layout,
//! with stacker's flag names, so an existing stacker user can switch.
//!
//! The format, the plan and the layer writing all live in `ocikit`; this
//! crate turns the command line into those calls and prints one JSON line
//! per image on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use ocikit::build::{self, BuildOptions};
use ocikit::pipe::ImageLine;
use ocikit::stacker::{self, Substitutions};

/// The command line, with stacker's flag names.
#[derive(Debug, Parser)]
#[command(
    name = "oci-build",
    version,
    about = "Build OCI images from a stacker.yaml, reproducibly and without LXC",
    long_about = "Build OCI images from a stacker.yaml, reproducibly and without LXC.\n\n\
        Reads the stacker.yaml (and its config.prerequisites), substitutes ${{VAR}} \
        placeholders, orders the images by their dependencies and builds each one: \
        its base (scratch, a tar, a tag of an OCI layout, an image of any transport \
        such as docker://, or another image of the build), imports, overlay_dirs \
        and run steps (in a container, through an OCI runtime) become layers, written \
        reproducibly (timestamps clamped to SOURCE_DATE_EPOCH, 0 when unset). An image \
        whose directives, base and import contents are unchanged since its last build \
        is taken from the build cache (--no-cache rebuilds it). Each \
        image that is not build_only is tagged with its name in the --oci-dir layout \
        and printed as one JSON line on stdout; nothing is tagged unless every image \
        builds. With --dry-run, prints the plan instead (one JSON line per image: name, \
        file, base, imports, build_only) without building or fetching anything."
)]
pub struct Cli {
    /// The stacker.yaml to build.
    #[arg(
        short = 'f',
        long = "stacker-file",
        value_name = "FILE",
        default_value = "stacker.yaml"
    )]
    pub stacker_file: PathBuf,

    /// The OCI layout to write the images to (its path is also ${{STACKER_OCI_DIR}}).
    #[arg(long, value_name = "DIR", default_value = "oci", global = true)]
    pub oci_dir: PathBuf,

    /// A substitution for ${{KEY}} placeholders, as KEY=VALUE (repeatable; a later one wins).
    #[arg(long, value_name = "KEY=VALUE")]
    pub substitute: Vec<String>,

    /// A YAML file of KEY: VALUE substitutions (read before --substitute, which wins).
    #[arg(long, value_name = "FILE")]
    pub substitute_file: Option<PathBuf>,

    /// Fail when an http(s) import has no `hash`.
    #[arg(long)]
    pub require_hash: bool,

    /// Parse, substitute and order the build, print the plan, build nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Build every image from its inputs, ignoring the build cache (which
    /// otherwise skips an image whose directives, base and import contents
    /// are unchanged); the cache is refreshed with the results.
    #[arg(long)]
    pub no_cache: bool,

    /// The layer format (only `tar`, OCI's; stacker's squashfs is not supported).
    #[arg(long, value_name = "TYPE", default_value = "tar", value_parser = ["tar"])]
    pub layer_type: String,

    /// Layer compression: gzip (read everywhere) or zstd (faster and smaller).
    #[arg(long, value_name = "ALGORITHM", default_value = "gzip", value_parser = ["gzip", "zstd"])]
    pub compression: String,

    /// Build for these platforms, OS/ARCH[/VARIANT], comma-separated, and tag
    /// each image as an OCI image index of one manifest per platform (even for
    /// one platform, so the index says which platform it is). Without it, each
    /// image is built for this machine and tagged as a plain manifest, as
    /// stacker does. ${{TARGETOS}}, ${{TARGETARCH}} and ${{TARGETVARIANT}} are set
    /// for each platform. A run step needs a platform this machine can execute
    /// (its own, or one with a binfmt_misc handler).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub platform: Vec<String>,

    /// The OCI runtime that executes `run` steps.
    #[arg(long, value_name = "PROGRAM", default_value = "runc")]
    pub runtime: String,

    /// Where image root filesystems are kept (its path is also ${{STACKER_ROOTFS_DIR}}).
    #[arg(long, value_name = "DIR", default_value = "roots", global = true)]
    pub roots_dir: PathBuf,

    /// Scratch space for staged blobs, the build cache, pulled bases and
    /// runtime bundles (in its oci-build/ directory). After each build,
    /// what no cache entry still needs is removed from it.
    #[arg(long, value_name = "DIR", default_value = ".stacker", global = true)]
    pub stacker_dir: PathBuf,

    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// oci-build's subcommands (stacker's names).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remove what builds leave behind, as `stacker clean` does: the
    /// --roots-dir, the --oci-dir layout and the --stacker-dir (build cache,
    /// staged blobs, pulled bases).
    Clean(CleanArgs),
}

/// `oci-build clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Accepted for stacker compatibility (a no-op there too): clean always
    /// removes everything.
    #[arg(long)]
    pub all: bool,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs oci-build.
pub fn run(cli: Cli) -> Result<ExitCode> {
    ocikit_cli::init_logging(cli.output.quiet);
    let cwd = std::env::current_dir().context("finding the current directory")?;
    let oci_dir = cwd.join(&cli.oci_dir);
    let roots_dir = cwd.join(&cli.roots_dir);
    let stacker_dir = cwd.join(&cli.stacker_dir);
    if let Some(Command::Clean(_)) = &cli.command {
        build::clean(
            &oci_dir,
            &roots_dir,
            &stacker_dir,
            &stacker_dir.join("oci-build"),
        )?;
        if !cli.output.quiet {
            eprintln!(
                "oci-build: removed {}, {} and {}",
                cli.roots_dir.display(),
                cli.oci_dir.display(),
                cli.stacker_dir.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut subs = Substitutions::with_builtins(&oci_dir, &cwd);
    subs.set("STACKER_ROOTFS_DIR", &roots_dir.display().to_string());
    subs.set("STACKER_STACKER_DIR", &stacker_dir.display().to_string());
    if let Some(file) = &cli.substitute_file {
        subs.add_file(file).map_err(ocikit_cli::usage)?;
    }
    for arg in &cli.substitute {
        subs.add_arg(arg).map_err(ocikit_cli::usage)?;
    }
    let platforms = if cli.platform.is_empty() {
        vec![build::host_platform()]
    } else {
        cli.platform
            .iter()
            .map(|p| build::parse_platform(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ocikit_cli::usage(anyhow::anyhow!("--platform: {e}")))?
    };
    // One plan per platform: substitution is textual, before parsing.
    let mut plans = Vec::new();
    for platform in &platforms {
        let mut subs = subs.clone();
        // With --platform, each platform's own; without, this machine's
        // unless given with --substitute (as a stacker user would).
        for (name, value) in [
            ("TARGETOS", platform.os.as_str()),
            ("TARGETARCH", platform.architecture.as_str()),
            ("TARGETVARIANT", platform.variant.as_deref().unwrap_or("")),
        ] {
            if !cli.platform.is_empty() || subs.get(name).is_none() {
                subs.set(name, value);
            }
        }
        let plan = stacker::load(&cli.stacker_file, &subs, cli.require_hash)?;
        plans.push((platform.clone(), plan));
    }
    if !cli.output.quiet {
        for warning in &plans[0].1.warnings {
            tracing::warn!("{warning}");
        }
    }
    let mut out = std::io::stdout().lock();
    if cli.dry_run {
        for (platform, plan) in &plans {
            for step in &plan.steps {
                let mut line = step.summary();
                if !cli.platform.is_empty() {
                    line["platform"] = build::base::platform_name(platform).into();
                }
                writeln!(out, "{line}").context("writing the plan to stdout")?;
            }
        }
        out.flush().context("writing the plan to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = BuildOptions {
        oci_dir: oci_dir.clone(),
        roots_dir,
        work_dir: stacker_dir.join("oci-build"),
        compression: cli
            .compression
            .parse()
            .map_err(|e: String| ocikit_cli::usage(anyhow::anyhow!(e)))?,
        epoch: ocikit::layer::tree::source_date_epoch().map_err(ocikit_cli::usage)?,
        runtime: cli.runtime.clone(),
        echo: (!cli.output.quiet)
            .then(|| std::sync::Arc::new(|line: &str| eprintln!("{line}")) as build::run::Echo),
        cache: !cli.no_cache,
        platform: platforms[0].clone(),
    };
    let built = if cli.platform.is_empty() {
        build::build(&plans[0].1, &options)?
    } else {
        build::build_platforms(&plans, &options)?
    };
    if !cli.output.quiet {
        for image in built.iter().filter(|b| b.cached) {
            eprintln!(
                "oci-build: image {}: up to date (build cache; --no-cache rebuilds it)",
                image.name
            );
        }
    }
    for image in built.iter().filter(|b| !b.build_only) {
        let mut line = ImageLine::new(
            format!("oci:{}:{}", cli.oci_dir.display(), image.name),
            image.manifest.digest.clone(),
            image.manifest.media_type.clone(),
            image.manifest.size,
        );
        line.name = Some(image.name.clone());
        line.write_to(&mut out).context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn stacker_flag_names() {
        let cli = Cli::try_parse_from([
            "oci-build",
            "-f",
            "x.yaml",
            "--substitute",
            "A=1",
            "--substitute",
            "B=2",
            "--dry-run",
        ])
        .expect("parse");
        assert_eq!(cli.stacker_file, PathBuf::from("x.yaml"));
        assert_eq!(cli.oci_dir, PathBuf::from("oci"));
        assert_eq!(cli.substitute, ["A=1", "B=2"]);
        assert!(cli.command.is_none());
        // stacker's directory flags are global: before or after `clean`.
        for args in [
            &["oci-build", "clean", "--oci-dir", "out", "--all"][..],
            &["oci-build", "--oci-dir", "out", "clean"][..],
        ] {
            let cli = Cli::try_parse_from(args).expect("parse");
            assert!(matches!(cli.command, Some(Command::Clean(_))), "{args:?}");
            assert_eq!(cli.oci_dir, PathBuf::from("out"), "{args:?}");
        }
    }
}
