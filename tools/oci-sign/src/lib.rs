//! `oci-sign`: cosign-compatible key pairs, image signatures and attestations.
//!
//! This crate is the command line only: arguments become calls into
//! `ocikit::cosign`, where the formats live and are tested.

mod password;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use futures_util::StreamExt as _;
use ocikit::cosign::attestation::{PredicateType, Statement};
use ocikit::cosign::places;
use ocikit::cosign::store::{self, Storage};
use ocikit::cosign::PrivateKey;
use ocikit_cli::images;

/// Sign container images the way cosign does, with cosign's key files:
/// `oci-sign --key cosign.key IMAGE…` appends a signature to each image's
/// `sha256-<hex>.sig` tag (in a registry or an oci: layout); `-` reads the
/// images as JSON lines from stdin. Prints one JSON line per image signed.
#[derive(Debug, Parser)]
#[command(
    name = "oci-sign",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A subcommand; without one, sign the images.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Signing options.
    #[command(flatten)]
    pub sign: SignArgs,
}

/// How signatures are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReferrersMode {
    /// cosign's `sha256-<hex>.sig` tag, which every verifier reads.
    #[default]
    Legacy,
    /// An OCI 1.1 referrer manifest (artifactType, subject).
    #[value(name = "oci-1-1")]
    Oci11,
}

/// Flags shared by signing and attesting.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD,
    /// else a terminal prompt, else stdin) or cosign.pub (public, to verify).
    #[arg(long, value_name = "KEY", required = true)]
    pub key: Option<PathBuf>,
    /// The repository name to sign as (docker-reference), e.g. the registry
    /// repository an oci: layout will be pushed to.
    #[arg(long, value_name = "REPO")]
    pub sign_container_identity: Option<String>,
    /// Where to store: cosign's legacy .sig/.att tag, or OCI 1.1 referrers.
    #[arg(long, value_enum, value_name = "MODE", default_value = "legacy")]
    pub registry_referrers_mode: ReferrersMode,
    /// Registry connection.
    #[command(flatten)]
    pub registry: ocikit_cli::RegistryArgs,
    /// Registry credentials.
    #[command(flatten)]
    pub auth: ocikit_cli::AuthArgs,
    /// Output.
    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,
    /// Images: oci:PATH[:TAG], docker://HOST/REPO[:TAG|@DIGEST], HOST/REPO…, or - for JSON lines on stdin.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `oci-sign [--key K] IMAGE…`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Annotations KEY=VALUE, repeatable: signed into the payload's `optional`
    /// by oci-sign, required of the signature by oci-verify.
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// For an index, also sign every manifest it lists.
    #[arg(long)]
    pub recursive: bool,
    /// Key, identity, storage, registry and images.
    #[command(flatten)]
    pub key: KeyArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create cosign.key (encrypted, mode 0600) and cosign.pub, as `cosign
    /// generate-key-pair`. The password comes from COSIGN_PASSWORD, else a
    /// terminal prompt (asked twice), else one line of stdin.
    GenerateKeyPair(GenerateKeyPair),
    /// Attach a signed in-toto attestation (DSSE) to each image, as `cosign
    /// attest`: stored in the image's sha256-<hex>.att tag.
    Attest(AttestArgs),
}

/// `oci-sign attest`.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// The predicate file.
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,
    /// The predicate type: custom, slsaprovenance, slsaprovenance02,
    /// slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex, or a URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    pub predicate_type: String,
    /// Key, identity, storage, registry and images.
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `oci-sign generate-key-pair`.
#[derive(Debug, clap::Args)]
pub struct GenerateKeyPair {
    /// Write PREFIX.key and PREFIX.pub instead of cosign.key and cosign.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
    /// Shared output flags.
    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the tool.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::GenerateKeyPair(args)) => generate_key_pair(args),
        Some(Command::Attest(args)) => {
            let kind = PredicateType::parse(&args.predicate_type).map_err(ocikit_cli::usage)?;
            let predicate = std::fs::read(&args.predicate)
                .with_context(|| format!("reading the predicate {}", args.predicate.display()))?;
            let timestamp =
                ocikit::cosign::time::rfc3339(ocikit::cosign::time::now_or_source_date_epoch());
            let what = What::Attest {
                kind,
                predicate,
                timestamp,
            };
            sign_images(&args.key, &what)
        }
        None => {
            let annotations = images::annotations(&cli.sign.annotations)?;
            let what = What::Sign {
                annotations,
                recursive: cli.sign.recursive,
            };
            sign_images(&cli.sign.key, &what)
        }
    }
}

/// What to attach to each image.
enum What {
    Sign {
        annotations: std::collections::BTreeMap<String, String>,
        recursive: bool,
    },
    Attest {
        kind: PredicateType,
        predicate: Vec<u8>,
        timestamp: String,
    },
}

fn sign_images(args: &KeyArgs, what: &What) -> Result<ExitCode> {
    let path = args
        .key
        .as_ref()
        .ok_or_else(|| ocikit_cli::usage(anyhow!("--key is required")))?;
    let stdin_used = args.images.iter().any(|i| i == "-");
    let password = password::read(false, !stdin_used)?;
    let key = ocikit::cosign::keys::load_private_key(path, &password)
        .context("loading the signing key")?;
    let client = images::client(&args.registry, &args.auth)?;
    let storage = match args.registry_referrers_mode {
        ReferrersMode::Legacy => Storage::LegacyTag,
        ReferrersMode::Oci11 => Storage::Referrers,
    };
    let work = images::expand(&args.images);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut worst = 0u8;
    runtime.block_on(async {
        let mut results = futures_util::stream::iter(work)
            .map(|work| {
                let (client, key) = (&client, &key);
                async move {
                    let work = work?;
                    let line = sign_one(client, key, args, what, storage, &work).await;
                    line.with_context(|| work.reference.to_string())
                }
            })
            .buffered(8);
        let mut stdout = std::io::stdout().lock();
        while let Some(result) = results.next().await {
            let outcome = result.and_then(|line| Ok(line.write_to(&mut stdout)?));
            if let Err(error) = outcome {
                worst = worst.max(ocikit_cli::report("oci-sign", &error));
            }
        }
    });
    Ok(ExitCode::from(worst))
}

async fn sign_one(
    client: &ocikit::registry::Client,
    key: &PrivateKey,
    args: &KeyArgs,
    what: &What,
    storage: Storage,
    work: &images::Work,
) -> Result<ocikit::pipe::ImageLine> {
    let opened = places::open(&work.reference, client).map_err(images::fail)?;
    let manifest = store::resolve(&opened.place, &opened.reference)
        .await
        .map_err(images::fail)?;
    let identity = args
        .sign_container_identity
        .clone()
        .or(opened.identity)
        .ok_or_else(|| {
            ocikit_cli::usage(anyhow!(
                "an oci: layout has no repository name to sign as; pass \
                 --sign-container-identity REPO (the repository it will be pushed to)"
            ))
        })?;
    let mut subjects = vec![manifest.descriptor()];
    let mut signed = Vec::new();
    match what {
        What::Sign {
            annotations,
            recursive,
        } => {
            if *recursive {
                subjects.extend(store::children(&manifest)?);
            }
            for subject in &subjects {
                let s = store::sign(&opened.place, subject, key, &identity, annotations, storage)
                    .await
                    .map_err(images::fail)?;
                signed.push(s);
            }
        }
        What::Attest {
            kind,
            predicate,
            timestamp,
        } => {
            let statement =
                Statement::new(kind, predicate, &identity, &manifest.digest, timestamp)?;
            let s = store::attest(&opened.place, &subjects[0], key, &statement, storage)
                .await
                .map_err(images::fail)?;
            signed.push(s);
        }
    }
    let mut line = images::output_line(work, &manifest);
    let field = match what {
        What::Sign { .. } => "signatures",
        What::Attest { .. } => "attestations",
    };
    let entries: Vec<serde_json::Value> = signed
        .iter()
        .map(|s| {
            serde_json::json!({
                "digest": s.digest,
                "layer": s.layer,
                "manifest": s.manifest,
                "added": s.added,
            })
        })
        .collect();
    line.extra.insert(field.to_owned(), entries.into());
    if !args.output.quiet {
        for s in &signed {
            eprintln!(
                "oci-sign: {} {} {} ({})",
                work.reference,
                if s.added { "signed" } else { "already signed" },
                s.digest,
                identity
            );
        }
    }
    Ok(line)
}

fn generate_key_pair(args: GenerateKeyPair) -> Result<ExitCode> {
    let password = password::read(true, true)?;
    let paths =
        ocikit::cosign::keys::write_key_pair(&args.output_key_prefix, &password, args.force)
            .context("generating a key pair")?;
    if !args.output.quiet {
        eprintln!("Private key written to {}", paths.private_key.display());
        eprintln!("Public key written to {}", paths.public_key.display());
    }
    let line = serde_json::json!({
        "privateKey": paths.private_key,
        "publicKey": paths.public_key,
    });
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        super::command().debug_assert();
    }
}
