//! `oci-inspect IMAGE`: skopeo inspect's job on every transport: a summary
//! (as skopeo prints it), the exact manifest bytes (`--raw`), the config
//! (`--config`), the pipe-contract line with the digest (`--digest`), or a
//! repository's tags (`--tags`), all JSON on stdout.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use ocikit::inspect::Inspector;
use ocikit::pipe::{read_lines, ImageLine};
use ocikit::ImageReference;
use ocikit_cli::{is_broken_pipe, report, usage, AuthArgs, RegistryArgs, RetryArgs};
use serde::Serialize;

const AFTER_HELP: &str = "\
Image references:
  oci:PATH[:TAG]                          an OCI image layout directory (oci:PATH@DIGEST to read by digest)
  oci-archive:FILE[:TAG]                  a tar of an OCI image layout
  docker://HOST[:PORT]/REPO[:TAG|@DIGEST] a registry (HOST/REPO… without docker:// means the same)

With IMAGE '-', JSON lines ({\"image\":…,\"digest\":…}) are read from stdin and each
image, pinned to its digest, is inspected; the output is then one JSON object per line.

For an index, the summary describes the image for this machine's platform, and
Digest is the index's digest, as skopeo inspect does; --raw shows the index itself.

Exit status: 0 ok, 1 failure, 2 usage error (e.g. a malformed reference).";

/// Show an image's summary, manifest, config, digest or tags.
#[derive(Debug, Parser)]
#[command(name = "oci-inspect", version, about, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// The image to inspect, or '-' to read JSON lines from stdin
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Print the manifest or index exactly as stored (with --config: the config's exact bytes)
    #[arg(long)]
    pub raw: bool,
    /// Print the image's config
    #[arg(long, conflicts_with_all = ["tags", "digest"])]
    pub config: bool,
    /// Print the repository's tags ({"Repository":…,"Tags":[…]}), as skopeo list-tags does
    #[arg(long, conflicts_with_all = ["raw", "digest"])]
    pub tags: bool,
    /// Print one pipe-contract line: {"image","digest","mediaType","size"}
    #[arg(long, conflicts_with = "raw")]
    pub digest: bool,
    /// Do not list the repository's tags in the summary's RepoTags
    #[arg(short, long)]
    pub no_tags: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagList {
    repository: String,
    tags: Vec<String>,
}

/// Runs `oci-inspect`.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut stdout = io::stdout().lock();
    if cli.image != "-" {
        let reference = ImageReference::parse(&cli.image)
            .map_err(usage)
            .context("image")?;
        runtime.block_on(inspect_one(&cli, &reference, &mut stdout, true))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut worst = 0u8;
    for line in read_lines(io::stdin().lock()) {
        let result = line.map_err(usage).and_then(|line| {
            let reference = ImageReference::parse(&line.image)
                .map_err(usage)
                .context("stdin")?
                .pinned(line.digest);
            runtime.block_on(inspect_one(&cli, &reference, &mut stdout, false))
        });
        if let Err(err) = result {
            if is_broken_pipe(&err) {
                return Ok(ExitCode::SUCCESS);
            }
            worst = worst.max(report("oci-inspect", &err));
        }
    }
    Ok(ExitCode::from(worst))
}

async fn inspect_one(
    cli: &Cli,
    reference: &ImageReference,
    out: &mut impl Write,
    pretty: bool,
) -> Result<()> {
    let registry = cli
        .registry
        .client_options(&cli.auth, &cli.retry, "--creds")?;
    let inspector = Inspector::open(reference, &registry)
        .await
        .with_context(|| reference.to_string())?;
    let json = |out: &mut dyn Write, value: &dyn erased::Json| -> Result<()> {
        value.write(out, pretty)?;
        Ok(())
    };
    if cli.tags {
        let repository = match reference {
            ImageReference::Registry(r) => r.name(),
            ImageReference::Layout(l) | ImageReference::Archive(l) => l.path.display().to_string(),
        };
        let tags = inspector
            .tags()
            .await
            .with_context(|| reference.to_string())?;
        return json(out, &TagList { repository, tags });
    }
    let (root, bytes) = inspector
        .raw()
        .await
        .with_context(|| reference.to_string())?;
    if cli.digest {
        return ImageLine::new(
            reference.without_digest().to_string(),
            root.digest,
            root.media_type,
            root.size,
        )
        .write_to(out)
        .map_err(Into::into);
    }
    if cli.raw && !cli.config {
        out.write_all(&bytes)?;
        if !pretty {
            out.write_all(b"\n")?;
        }
        return out.flush().map_err(Into::into);
    }
    if cli.config {
        let (_, image) = inspector
            .image(&root, bytes)
            .await
            .with_context(|| reference.to_string())?;
        let config = inspector
            .config(&image)
            .await
            .with_context(|| reference.to_string())?;
        if cli.raw {
            out.write_all(&config)?;
            return out.flush().map_err(Into::into);
        }
        let value: serde_json::Value = serde_json::from_slice(&config)
            .with_context(|| format!("{reference}: the config is not JSON"))?;
        return json(out, &value);
    }
    let summary = inspector
        .summary(!cli.no_tags)
        .await
        .with_context(|| reference.to_string())?;
    json(out, &summary)
}

/// JSON output in skopeo's style: four-space indentation for one image, one
/// compact line per image for a stream.
mod erased {
    use std::io::{self, Write};

    use serde::Serialize;

    /// Anything serialisable, behind a trait object.
    pub trait Json {
        /// Writes the value, pretty (skopeo's indentation) or as one line.
        fn write(&self, out: &mut dyn Write, pretty: bool) -> io::Result<()>;
    }

    impl<T: Serialize> Json for T {
        fn write(&self, out: &mut dyn Write, pretty: bool) -> io::Result<()> {
            if pretty {
                let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
                self.serialize(&mut ser).map_err(io::Error::other)?;
            } else {
                serde_json::to_writer(&mut *out, self).map_err(io::Error::other)?;
            }
            out.write_all(b"\n")?;
            out.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_valid() {
        Cli::command().debug_assert();
    }
}
