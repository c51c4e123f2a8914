//! `oci-copy SRC DST`: copy an image between OCI layouts (`oci:`), archives
//! (`oci-archive:`) and registries (`docker://`), skopeo-compatible, keeping
//! digests (manifests are copied byte for byte).
//!
//! The command line is skopeo copy's; the work is `ocikit::copy`. Each image
//! copied prints one JSON line on stdout (the pipe contract); `-` as SRC reads
//! such lines from stdin.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, ValueEnum};
use ocikit::copy::{self, Compression, CopyOptions, CopyReport, Format, MultiArch, Progress};
use ocikit::pipe::{read_lines, ImageLine};
use ocikit::reference::{ImageReference, Target};
use ocikit_cli::progress::{mib, reporter, short};
use ocikit_cli::{
    is_broken_pipe, report, usage, AuthArgs, DestRegistryArgs, OutputArgs, RegistryArgs, RetryArgs,
    SrcRegistryArgs,
};

const AFTER_HELP: &str = "\
Image references:
  oci:PATH[:TAG]                          an OCI image layout directory (oci:PATH@DIGEST to read by digest)
  oci-archive:FILE[:TAG]                  a tar of an OCI image layout
  docker://HOST[:PORT]/REPO[:TAG|@DIGEST] a registry (HOST/REPO… without docker:// means the same)

Repository prefix: a DST ending in '/' (docker://HOST[:PORT]/[PATH/], oci:DIR/,
oci-archive:DIR/) is a prefix. Each image lands at PREFIX + NAME, keeping its tag,
where NAME is the `name` field of its JSON input line if present, else the last path
component of a docker:// source's repository, else the tag of an oci:/oci-archive:
source. Under oci:DIR/ NAME is a layout directory, under oci-archive:DIR/ a file NAME.tar.

With SRC '-', JSON lines ({\"image\":…,\"digest\":…}) are read from stdin and each image,
pinned to its digest, is copied; a bad line is reported and the rest go on.

Exit status: 0 all copied, 1 a copy failed, 2 usage error (e.g. a malformed reference).";

/// Copy container images between layouts, archives and registries.
#[derive(Debug, Parser)]
#[command(name = "oci-copy", version, about, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// The image to copy, or '-' to read JSON lines from stdin
    #[arg(value_name = "SRC")]
    pub source: String,
    /// Where to copy it; a DST ending in '/' is a repository prefix
    #[arg(value_name = "DST")]
    pub destination: String,

    #[command(flatten)]
    pub src: SrcRegistryArgs,
    #[command(flatten)]
    pub dest: DestRegistryArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub retry: RetryArgs,

    /// Write the digest of the copied manifest to this file
    #[arg(long, value_name = "PATH")]
    pub digestfile: Option<PathBuf>,
    /// Manifest format at the destination (converting changes the digest)
    #[arg(short = 'f', long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// Fail instead of converting or recompressing anything that would change a digest
    #[arg(long)]
    pub preserve_digests: bool,
    /// Recompress layers with this algorithm (changes layer and manifest digests)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub dest_compress_format: Option<CompressArg>,
    /// What to copy of a multi-platform index [default: the whole index, as it is]
    #[arg(long, value_enum, value_name = "MODE", conflicts_with = "all")]
    pub multi_arch: Option<MultiArchArg>,
    /// Copy every image of an index (same as --multi-arch all)
    #[arg(short, long)]
    pub all: bool,
    /// Do not copy signatures, attestations and SBOMs (cosign tags, referrers)
    #[arg(long)]
    pub remove_signatures: bool,
    /// How many blobs to copy at once
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub image_parallel_copies: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// OCI image manifest / index
    Oci,
    /// Docker schema 2 manifest / manifest list
    V2s2,
}

/// `--dest-compress-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    /// gzip
    Gzip,
    /// zstd
    Zstd,
}

/// `--multi-arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MultiArchArg {
    /// Only the image for this machine's platform
    System,
    /// Every image and the index
    All,
    /// The index alone (its images must already be at the destination)
    IndexOnly,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

impl Cli {
    /// The library's options from the flags.
    pub fn copy_options(&self) -> Result<CopyOptions> {
        let source_registry = RegistryArgs::from(self.src.clone()).client_options(
            &self.auth,
            &self.retry,
            "--src-creds",
        )?;
        let destination_registry = RegistryArgs::from(self.dest.clone()).client_options(
            &self.auth,
            &self.retry,
            "--dest-creds",
        )?;
        Ok(CopyOptions {
            source_registry,
            destination_registry,
            parallel: self.image_parallel_copies as usize,
            multi_arch: match (self.all, self.multi_arch) {
                (true, _) | (_, Some(MultiArchArg::All)) => MultiArch::All,
                (_, Some(MultiArchArg::System)) => MultiArch::System,
                (_, Some(MultiArchArg::IndexOnly)) => MultiArch::IndexOnly,
                (false, None) => MultiArch::Whole,
            },
            format: self.format.map(|f| match f {
                FormatArg::Oci => Format::Oci,
                FormatArg::V2s2 => Format::V2s2,
            }),
            preserve_digests: self.preserve_digests,
            remove_signatures: self.remove_signatures,
            compress: self.dest_compress_format.map(|c| match c {
                CompressArg::Gzip => Compression::Gzip,
                CompressArg::Zstd => Compression::Zstd,
            }),
        })
    }
}

/// Runs `oci-copy`.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let target = Target::parse(&cli.destination)
        .map_err(usage)
        .context("destination")?;
    let options = cli.copy_options()?;
    let progress = reporter("oci-copy", cli.output.quiet);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut digests = Vec::new();
    let mut stdout = io::stdout().lock();
    let mut worst = 0u8;
    if cli.source == "-" {
        for line in read_lines(io::stdin().lock()) {
            let result = line.map_err(usage).and_then(|line| {
                let source = ImageReference::parse(&line.image)
                    .map_err(usage)
                    .context("stdin")?
                    .pinned(line.digest.clone());
                let report = copy_one(
                    &runtime,
                    &cli,
                    &options,
                    &progress,
                    &source,
                    line.name.as_deref(),
                    &target,
                )?;
                emit(&mut stdout, &report, &mut digests)
            });
            if let Err(err) = result {
                if is_broken_pipe(&err) {
                    return Ok(ExitCode::SUCCESS);
                }
                worst = worst.max(report("oci-copy", &err));
            }
        }
    } else {
        let source = ImageReference::parse(&cli.source)
            .map_err(usage)
            .context("source")?;
        let report = copy_one(&runtime, &cli, &options, &progress, &source, None, &target)?;
        emit(&mut stdout, &report, &mut digests)?;
    }
    if let Some(path) = &cli.digestfile {
        std::fs::write(path, digests.join("\n"))
            .with_context(|| format!("writing --digestfile {}", path.display()))?;
    }
    Ok(ExitCode::from(worst))
}

fn copy_one(
    runtime: &tokio::runtime::Runtime,
    cli: &Cli,
    options: &CopyOptions,
    progress: &Arc<dyn Progress>,
    source: &ImageReference,
    name: Option<&str>,
    target: &Target,
) -> Result<CopyReport> {
    let destination = match target {
        Target::Image(image) => image.clone(),
        Target::Prefix(prefix) => {
            let name = name.or_else(|| source.default_name()).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "{source}: cannot name it under the prefix {prefix}: give the source a tag, or a \"name\" field on its JSON line"
                ))
            })?;
            prefix
                .join(name, source.tag())
                .map_err(usage)
                .context("destination")?
        }
    };
    let report = runtime
        .block_on(copy::copy(source, &destination, options, progress.clone()))
        .with_context(|| format!("{source} → {destination}"))?;
    if !cli.output.quiet {
        eprintln!(
            "oci-copy: {source} → {}: {} ({} blobs copied, {}; {} already there)",
            report.image,
            short(&report.digest),
            report.blobs_copied,
            mib(report.bytes_copied),
            report.blobs_skipped
        );
        if report.digest_changed() {
            eprintln!(
                "oci-copy: note: the digest changed from {} to {} (manifest converted or layers recompressed)",
                report.source_digest, report.digest
            );
        }
    }
    Ok(report)
}

fn emit(out: &mut impl Write, report: &CopyReport, digests: &mut Vec<String>) -> Result<()> {
    let mut line = ImageLine::new(
        report.image.to_string(),
        report.digest.clone(),
        report.media_type.clone(),
        report.size,
    );
    let extra = &mut line.extra;
    if report.digest_changed() {
        extra.insert(
            "sourceDigest".into(),
            serde_json::Value::from(report.source_digest.to_string()),
        );
    }
    if !report.signatures.is_empty() {
        extra.insert(
            "signatures".into(),
            serde_json::Value::from(report.signatures.clone()),
        );
    }
    if !report.referrers.is_empty() {
        let referrers: Vec<String> = report.referrers.iter().map(|d| d.to_string()).collect();
        extra.insert("referrers".into(), serde_json::Value::from(referrers));
    }
    line.write_to(out)?;
    digests.push(report.digest.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_map_to_options() {
        let cli = Cli::parse_from([
            "oci-copy",
            "--all",
            "--format=oci",
            "--dest-compress-format",
            "zstd",
            "--dest-tls-verify=false",
            "--image-parallel-copies",
            "2",
            "oci:a",
            "oci:b",
        ]);
        let o = cli.copy_options().expect("options");
        assert_eq!(o.multi_arch, MultiArch::All);
        assert_eq!(o.format, Some(Format::Oci));
        assert_eq!(o.compress, Some(Compression::Zstd));
        assert_eq!(o.parallel, 2);
        assert_eq!(cli.dest.dest_tls_verify, Some(false));
        let cli = Cli::parse_from(["oci-copy", "--src-tls-verify", "oci:a", "oci:b"]);
        assert_eq!(cli.src.src_tls_verify, Some(true));
        assert_eq!(
            cli.copy_options().expect("options").multi_arch,
            MultiArch::Whole
        );
    }
}
