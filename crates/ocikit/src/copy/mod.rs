//! The copy engine: moves an image (a manifest or an index and everything it
//! refers to) from one place to another, verified end to end.
//!
//! The walk is the same whatever the endpoints (see [`endpoint`]): children
//! first (blobs, then manifests, then indexes), the root last, and the tag only
//! once everything under it is at the destination and verified, so a failed or
//! interrupted copy never leaves a tag pointing at something incomplete, and a
//! rerun skips every blob that is already there. An image manifest that a
//! registry destination already holds, unchanged, is not walked at all: one
//! HEAD of the manifest stands for its blobs (a registry only accepts a
//! manifest whose blobs it has), so a re-push costs a request, not one per
//! blob.
//!
//! Manifests are copied byte for byte unless a conversion is asked for or
//! needed (an `oci:` destination gets OCI media types, as skopeo writes it),
//! in which case the new digest is reported and `--preserve-digests` refuses.
//! Blobs move with bounded parallelism (`--image-parallel-copies`).

pub mod compress;
pub mod convert;
pub mod endpoint;
pub mod progress;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::archive::ArchiveError;
use crate::digest::Digest;
use crate::layout::LayoutError;
use crate::manifest::{self, Descriptor, Manifest, ManifestKind};
use crate::reference::ImageReference;
use crate::registry::{ClientOptions, RegistryError};

pub use compress::Compression;
pub use convert::Format;
pub use endpoint::{Sink, Source};
pub use progress::{BlobOutcome, Event, NoProgress, Progress};

/// What to do with an index (`--multi-arch`, `--all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiArch {
    /// ocikit's default: the whole index, as it is (like crane and regctl),
    /// so the digest that gets signed stays the same.
    #[default]
    Whole,
    /// skopeo's `system`: only the manifest for this machine's platform.
    System,
    /// skopeo's `all` (`--all`): every manifest and the index.
    All,
    /// skopeo's `index-only`: the index alone, none of its manifests.
    IndexOnly,
}

/// How to copy; the tools fill it from their flags.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Blobs in flight at once (`--image-parallel-copies`, default 6).
    pub parallel: usize,
    /// What to do with an index.
    pub multi_arch: MultiArch,
    /// Convert manifests to this format (`--format`).
    pub format: Option<Format>,
    /// Refuse anything that would change a digest (`--preserve-digests`).
    pub preserve_digests: bool,
    /// Leave cosign attachments and referrers behind (`--remove-signatures`).
    pub remove_signatures: bool,
    /// Recompress layers (`--dest-compress-format`), which changes digests.
    pub compress: Option<Compression>,
    /// How to reach a source registry (`--src-*` flags).
    pub source_registry: ClientOptions,
    /// How to reach a destination registry (`--dest-*` flags).
    pub destination_registry: ClientOptions,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            parallel: 6,
            multi_arch: MultiArch::Whole,
            format: None,
            preserve_digests: false,
            remove_signatures: false,
            compress: None,
            source_registry: ClientOptions {
                creds_flag: "--src-creds",
                ..ClientOptions::default()
            },
            destination_registry: ClientOptions {
                creds_flag: "--dest-creds",
                ..ClientOptions::default()
            },
        }
    }
}

/// Why a copy failed. Each error names the image or blob it is about.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A layout could not be read or written.
    #[error(transparent)]
    Layout(Box<LayoutError>),
    /// An archive could not be read or written.
    #[error(transparent)]
    Archive(Box<ArchiveError>),
    /// A registry request failed.
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// A manifest could not be read.
    #[error("{image}: manifest {digest}: {source}")]
    Manifest {
        /// The source image.
        image: String,
        /// The manifest.
        digest: Digest,
        /// Why.
        #[source]
        source: manifest::ManifestError,
    },
    /// A blob transfer failed (including a digest or size mismatch).
    #[error("{image}: blob {digest}: {reason}")]
    Blob {
        /// The image being copied.
        image: String,
        /// The blob.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// A conversion or recompression would change a digest, and
    /// `--preserve-digests` forbids it.
    #[error("{image}: {what} would change digest {digest}, and --preserve-digests forbids it; drop --preserve-digests, or copy to a destination that accepts the source format")]
    WouldChangeDigest {
        /// The source image.
        image: String,
        /// The conversion.
        what: String,
        /// The manifest whose digest would change.
        digest: Digest,
    },
    /// A manifest cannot be converted to the format asked for.
    #[error("{image}: manifest {digest}: cannot convert: {reason}")]
    Conversion {
        /// The source image.
        image: String,
        /// The manifest.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// `--multi-arch system` found no manifest for this platform.
    #[error("{image}: index {digest} has no manifest for {platform} (it has: {available}); use --multi-arch all to copy the whole index")]
    NoPlatform {
        /// The source image.
        image: String,
        /// The index.
        digest: Digest,
        /// This machine's platform.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// The destination asked for a digest the copied image does not have.
    #[error("{image}: the destination names digest {wanted}, but the copied image is {actual}")]
    DestinationDigest {
        /// The destination.
        image: String,
        /// From the destination reference.
        wanted: Digest,
        /// What was copied.
        actual: Digest,
    },
    /// The destination cannot hold the format asked for.
    #[error("{image}: {reason}")]
    UnsupportedFormat {
        /// The destination.
        image: String,
        /// Why.
        reason: String,
    },
    /// A referrer listed for a manifest names another `subject`.
    #[error("{image}: {referrer} is listed as a referrer of {subject}, but its subject is another manifest; the source's referrers list is wrong (rebuild its referrers tag schema index), or copy with --remove-signatures")]
    Referrer {
        /// The source image.
        image: String,
        /// The manifest whose referrers were listed.
        subject: Digest,
        /// The manifest listed.
        referrer: Digest,
    },
    /// A background task failed.
    #[error("copy task failed: {0}")]
    Task(String),
}

impl CopyError {
    /// Whether the error is a manifest or blob that is not at the source.
    pub fn is_not_found(&self) -> bool {
        match self {
            CopyError::Registry(e) => e.is_not_found(),
            CopyError::Layout(e) => matches!(**e, LayoutError::BlobMissing { .. }),
            _ => false,
        }
    }
}

impl From<LayoutError> for CopyError {
    fn from(e: LayoutError) -> CopyError {
        CopyError::Layout(Box::new(e))
    }
}

impl From<RegistryError> for CopyError {
    fn from(e: RegistryError) -> CopyError {
        CopyError::Registry(Box::new(e))
    }
}

impl From<ArchiveError> for CopyError {
    fn from(e: ArchiveError) -> CopyError {
        CopyError::Archive(Box::new(e))
    }
}

/// What a copy produced: the pipe contract's JSON line and a few counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The destination image, without a digest (skopeo may read it).
    pub image: ImageReference,
    /// The digest of the root manifest at the destination.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// The digest of the root at the source; differs from `digest` after a
    /// conversion or recompression.
    pub source_digest: Digest,
    /// Tags of signatures, attestations and SBOMs copied along.
    pub signatures: Vec<String>,
    /// OCI 1.1 referrers (signatures, SBOMs, attestations with a `subject`)
    /// copied along, by digest.
    pub referrers: Vec<Digest>,
    /// Blobs whose bytes were transferred.
    pub blobs_copied: u64,
    /// Blobs already at the destination (or mounted).
    pub blobs_skipped: u64,
    /// Bytes transferred.
    pub bytes_copied: u64,
}

impl CopyReport {
    /// Whether the copy changed the root digest.
    pub fn digest_changed(&self) -> bool {
        self.digest != self.source_digest
    }
}

/// Copies `source` to `destination`.
pub async fn copy(
    source: &ImageReference,
    destination: &ImageReference,
    options: &CopyOptions,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport, CopyError> {
    let src = Source::open(source, &options.source_registry).await?;
    let dst = Sink::open(destination, &options.destination_registry).await?;
    if options.format == Some(Format::V2s2) && dst.wants_oci() {
        return Err(CopyError::UnsupportedFormat {
            image: destination.to_string(),
            reason:
                "an OCI layout holds OCI manifests only; drop --format v2s2 or copy to a registry"
                    .into(),
        });
    }
    let root = src.resolve(source).await?;
    let engine = Arc::new(Engine {
        image: source.to_string(),
        src,
        dst,
        options: options.clone(),
        progress,
        permits: Arc::new(Semaphore::new(options.parallel.max(1))),
        copied: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        manifests: Mutex::new(Vec::new()),
    });
    let root = engine.select_platform(root).await?;
    let written = if root_is_index(&root) && engine.options.multi_arch == MultiArch::IndexOnly {
        engine.copy_index_only(&root).await?
    } else {
        engine
            .clone()
            .copy_manifest(root.clone(), options.format)
            .await?
    };
    if let Some(wanted) = destination.digest() {
        if wanted != &written.digest {
            return Err(CopyError::DestinationDigest {
                image: destination.to_string(),
                wanted: wanted.clone(),
                actual: written.digest.clone(),
            });
        }
    }
    let (signatures, referrers) = if engine.options.remove_signatures {
        (Vec::new(), Vec::new())
    } else {
        engine.copy_signatures().await?
    };
    engine.dst.tag_root(&written, destination).await?;
    let engine = Arc::into_inner(engine)
        .ok_or_else(|| CopyError::Task("a copy task outlived the copy".into()))?;
    let report = CopyReport {
        image: destination.without_digest(),
        digest: written.digest,
        media_type: written.media_type,
        size: written.size,
        source_digest: root.digest,
        signatures,
        referrers,
        blobs_copied: engine.copied.load(Ordering::Relaxed),
        blobs_skipped: engine.skipped.load(Ordering::Relaxed),
        bytes_copied: engine.bytes.load(Ordering::Relaxed),
    };
    engine.dst.finish().await?;
    Ok(report)
}

fn root_is_index(root: &Descriptor) -> bool {
    manifest::is_index(&root.media_type)
}

/// The platform of this machine, GOOS/GOARCH style, for `--multi-arch system`.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        other => other,
    };
    ("linux", arch)
}

/// Picks the entry of an index for this machine's platform, if any.
pub fn pick_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let (os, arch) = host_platform();
    manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    })
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One copy in progress: the endpoints, options and counters shared by the
/// parallel blob tasks.
pub(crate) struct Engine {
    pub(crate) image: String,
    pub(crate) src: Source,
    pub(crate) dst: Sink,
    pub(crate) options: CopyOptions,
    pub(crate) progress: Arc<dyn Progress>,
    permits: Arc<Semaphore>,
    copied: AtomicU64,
    skipped: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Every manifest written so far: its source digest and its descriptor
    /// at the destination (the ones whose signatures may travel).
    manifests: Mutex<Vec<(Digest, Descriptor)>>,
}

impl Engine {
    async fn select_platform(&self, root: Descriptor) -> Result<Descriptor, CopyError> {
        if self.options.multi_arch != MultiArch::System || !root_is_index(&root) {
            return Ok(root);
        }
        let parsed = self.read_manifest(&root).await?.1;
        let ManifestKind::Index { manifests } = parsed.kind else {
            return Ok(root);
        };
        if let Some(found) = pick_platform(&manifests) {
            return Ok(found.clone());
        }
        let (os, arch) = host_platform();
        let available: Vec<String> = manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|p| format!("{}/{}", p.os, p.architecture))
            .collect();
        Err(CopyError::NoPlatform {
            image: self.image.clone(),
            digest: root.digest,
            platform: format!("{os}/{arch}"),
            available: if available.is_empty() {
                "no platforms".into()
            } else {
                available.join(", ")
            },
        })
    }

    async fn read_manifest(&self, desc: &Descriptor) -> Result<(Vec<u8>, Manifest), CopyError> {
        let bytes = self.src.manifest(desc).await?;
        let parsed = Manifest::parse(&bytes, Some(&desc.media_type)).map_err(|source| {
            CopyError::Manifest {
                image: self.image.clone(),
                digest: desc.digest.clone(),
                source,
            }
        })?;
        Ok((bytes, parsed))
    }

    /// The format a manifest of `media_type` must have at the destination.
    fn target_format(&self, media_type: &str, asked: Option<Format>) -> Option<Format> {
        let current = convert::format_of(media_type)?;
        let wanted = asked
            .or_else(|| (self.dst.wants_oci() && current == Format::V2s2).then_some(Format::Oci))?;
        (wanted != current).then_some(wanted)
    }

    fn copy_manifest(
        self: Arc<Self>,
        desc: Descriptor,
        format: Option<Format>,
    ) -> BoxFuture<'static, Result<Descriptor, CopyError>> {
        Box::pin(async move {
            let (bytes, parsed) = self.read_manifest(&desc).await?;
            self.write_manifest(desc, bytes, parsed, format).await
        })
    }

    /// Whether an image manifest that will be copied unchanged is already
    /// at the destination, complete: then a re-push is one HEAD instead of
    /// one per blob (as containerd and buildkit push). An index is always
    /// walked, each of its manifests asked about in turn.
    async fn already_at_destination(
        &self,
        desc: &Descriptor,
        parsed: &Manifest,
        convert_to: Option<Format>,
    ) -> bool {
        matches!(parsed.kind, ManifestKind::Image { .. })
            && convert_to.is_none()
            && self.options.compress.is_none()
            && self.dst.has_manifest(desc).await
    }

    /// Copies what a manifest (already read from the source) refers to, then
    /// the manifest itself, converted if needed; returns its descriptor at
    /// the destination.
    fn write_manifest(
        self: Arc<Self>,
        desc: Descriptor,
        bytes: Vec<u8>,
        parsed: Manifest,
        format: Option<Format>,
    ) -> BoxFuture<'static, Result<Descriptor, CopyError>> {
        Box::pin(async move {
            let convert_to = self.target_format(&parsed.media_type, format);
            if self
                .already_at_destination(&desc, &parsed, convert_to)
                .await
            {
                self.skipped
                    .fetch_add(parsed.references().len() as u64, Ordering::Relaxed);
                self.dst.adopt_manifest(&desc, bytes);
                self.remember(&desc.digest, &desc);
                return Ok(desc);
            }
            let out = match &parsed.kind {
                ManifestKind::Index { manifests } => {
                    let mut children = Vec::with_capacity(manifests.len());
                    let mut changed = false;
                    for child in manifests {
                        let written = if manifest::is_manifest_type(&child.media_type) {
                            self.clone().copy_manifest(child.clone(), format).await?
                        } else {
                            self.clone()
                                .copy_blobs(vec![child.clone()])
                                .await?
                                .remove(0)
                        };
                        changed |= written.digest != child.digest
                            || written.media_type != child.media_type;
                        children.push(written);
                    }
                    if changed || convert_to.is_some() {
                        convert::rewrite_index(&bytes, convert_to, &children)
                            .map_err(|reason| self.conversion(&desc, reason))?
                    } else {
                        bytes
                    }
                }
                ManifestKind::Image { config, layers } => {
                    let mut wanted = vec![config.clone()];
                    wanted.extend(layers.iter().cloned());
                    let mut written = self.clone().copy_blobs(wanted).await?;
                    let new_layers: Vec<Descriptor> = written
                        .drain(1..)
                        .map(|mut layer| {
                            if let Some(to) = convert_to {
                                layer.media_type =
                                    convert::convert_media_type(&layer.media_type, to)
                                        .map_err(|reason| self.conversion(&desc, reason))?;
                            }
                            Ok(layer)
                        })
                        .collect::<Result<_, CopyError>>()?;
                    let changed = new_layers.iter().zip(layers).any(|(n, o)| n != o);
                    if changed || convert_to.is_some() {
                        convert::rewrite_image(&bytes, convert_to, &new_layers)
                            .map_err(|reason| self.conversion(&desc, reason))?
                    } else {
                        bytes
                    }
                }
            };
            let digest = Digest::of(desc.digest.algorithm(), &out);
            if digest != desc.digest && self.options.preserve_digests {
                let what = match (convert_to, self.options.compress) {
                    (Some(Format::Oci), _) => "converting Docker v2s2 to OCI".to_owned(),
                    (Some(Format::V2s2), _) => "converting OCI to Docker v2s2".to_owned(),
                    (None, Some(c)) => format!("recompressing layers with {}", c.name()),
                    (None, None) => "rewriting a child manifest".to_owned(),
                };
                return Err(CopyError::WouldChangeDigest {
                    image: self.image.clone(),
                    what,
                    digest: desc.digest,
                });
            }
            let media_type = match convert_to {
                Some(to) => convert::convert_media_type(&parsed.media_type, to)
                    .map_err(|reason| self.conversion(&desc, reason))?,
                None => parsed.media_type.clone(),
            };
            let mut written = desc.clone();
            written.media_type = media_type;
            written.digest = digest;
            written.size = out.len() as u64;
            self.dst.put_manifest(&written, out).await?;
            self.progress.event(Event::ManifestWritten {
                digest: written.digest.clone(),
                media_type: written.media_type.clone(),
            });
            self.remember(&desc.digest, &written);
            Ok(written)
        })
    }

    fn conversion(&self, desc: &Descriptor, reason: String) -> CopyError {
        CopyError::Conversion {
            image: self.image.clone(),
            digest: desc.digest.clone(),
            reason,
        }
    }

    /// An index alone (`--multi-arch index-only`): its manifests must already
    /// be at the destination.
    async fn copy_index_only(&self, root: &Descriptor) -> Result<Descriptor, CopyError> {
        let bytes = self.src.manifest(root).await?;
        self.dst.put_manifest(root, bytes).await?;
        self.remember(&root.digest, root);
        Ok(root.clone())
    }

    fn remember(&self, source: &Digest, written: &Descriptor) {
        if let Ok(mut manifests) = self.manifests.lock() {
            manifests.push((source.clone(), written.clone()));
        }
    }

    /// Copies blobs in parallel (bounded by the shared permits); returns their
    /// descriptors at the destination, in order (changed only by recompression).
    async fn copy_blobs(
        self: Arc<Self>,
        blobs: Vec<Descriptor>,
    ) -> Result<Vec<Descriptor>, CopyError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut results: Vec<Option<Descriptor>> = vec![None; blobs.len()];
        let mut first_seen = std::collections::HashMap::new();
        for (i, blob) in blobs.iter().enumerate() {
            if first_seen.contains_key(&blob.digest) {
                // The same blob twice in one manifest (empty layers): once is enough.
                continue;
            }
            first_seen.insert(blob.digest.clone(), i);
            let engine = self.clone();
            let blob = blob.clone();
            let permits = self.permits.clone();
            tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .map_err(|e| CopyError::Task(e.to_string()))?;
                let written = engine.copy_blob(&blob, i == 0).await?;
                Ok::<_, CopyError>((i, written))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (i, written) = joined.map_err(|e| CopyError::Task(e.to_string()))??;
            results[i] = Some(written);
        }
        // Duplicates take the descriptor their first occurrence got.
        let mut out = Vec::with_capacity(blobs.len());
        for (i, blob) in blobs.iter().enumerate() {
            let first = first_seen.get(&blob.digest).copied().unwrap_or(i);
            let written = results[first]
                .clone()
                .ok_or_else(|| CopyError::Task(format!("blob {} was not copied", blob.digest)))?;
            out.push(written);
        }
        Ok(out)
    }

    /// One blob: skipped when the destination has it, recompressed when asked
    /// (layers only; `is_config` is the config), else streamed and verified.
    async fn copy_blob(
        self: &Arc<Self>,
        blob: &Descriptor,
        is_config: bool,
    ) -> Result<Descriptor, CopyError> {
        if let Some(to) = self.options.compress.filter(|_| !is_config) {
            if let Some(written) = compress::recompress(self, blob, to).await? {
                return Ok(written);
            }
        }
        if self.dst.has_blob(blob).await? {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            self.progress.event(Event::BlobDone {
                digest: blob.digest.clone(),
                how: BlobOutcome::Skipped,
            });
            return Ok(blob.clone());
        }
        self.progress.event(Event::BlobStarted {
            digest: blob.digest.clone(),
            size: blob.size,
        });
        let how = endpoint::transfer_blob(self, blob).await?;
        match how {
            BlobOutcome::Copied => self.copied.fetch_add(1, Ordering::Relaxed),
            _ => self.skipped.fetch_add(1, Ordering::Relaxed),
        };
        self.progress.event(Event::BlobDone {
            digest: blob.digest.clone(),
            how,
        });
        Ok(blob.clone())
    }

    /// Signatures, attestations and SBOMs of every manifest copied so far
    /// whose digest the copy kept (a converted image is a new image: its old
    /// signatures do not sign it): cosign's `sha256-<hex>.sig/.att/.sbom`
    /// tags, and OCI 1.1 referrers, recursively (a signature of an SBOM
    /// travels with the SBOM). Returns the tags and referrer digests written.
    async fn copy_signatures(self: &Arc<Self>) -> Result<(Vec<String>, Vec<Digest>), CopyError> {
        let written: Vec<(Digest, Descriptor)> = self
            .manifests
            .lock()
            .map(|m| m.clone())
            .map_err(|e| CopyError::Task(e.to_string()))?;
        let mut queue: VecDeque<Digest> = written
            .into_iter()
            .filter(|(source, dest)| *source == dest.digest)
            .map(|(source, _)| source)
            .collect();
        let mut seen: HashSet<Digest> = queue.iter().cloned().collect();
        let mut tags = Vec::new();
        let mut referrers = Vec::new();
        while let Some(digest) = queue.pop_front() {
            tags.extend(self.copy_attachments(&digest).await?);
            for found in self.src.referrers(&digest).await? {
                if !seen.insert(found.digest.clone()) {
                    continue;
                }
                if let Some(copied) = self.copy_referrer(&digest, found).await? {
                    queue.push_back(copied.clone());
                    referrers.push(copied);
                }
            }
        }
        Ok((tags, referrers))
    }

    /// One referrer of `subject`, copied byte for byte and listed at the
    /// destination. A referrer the source lists but no longer holds (a stale
    /// tag schema entry) is skipped with a note; one whose `subject` is not
    /// `subject` is refused.
    async fn copy_referrer(
        self: &Arc<Self>,
        subject: &Digest,
        found: Descriptor,
    ) -> Result<Option<Digest>, CopyError> {
        let (bytes, parsed) = match self.read_manifest(&found).await {
            Ok(read) => read,
            Err(e) if e.is_not_found() => {
                self.progress.event(Event::Note(format!(
                    "referrer {} of {subject} is listed but not in the source; skipped",
                    found.digest
                )));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if parsed.subject.as_ref().map(|s| &s.digest) != Some(subject) {
            return Err(CopyError::Referrer {
                image: self.image.clone(),
                subject: subject.clone(),
                referrer: found.digest,
            });
        }
        let listed = parsed.referrer_descriptor(found.digest.clone(), bytes.len() as u64);
        let copied = self
            .clone()
            .write_manifest(found.clone(), bytes, parsed, None)
            .await?;
        if copied.digest != found.digest {
            // Recompression (--dest-compress-format) rewrote it: the copy no
            // longer is the referrer that was listed; leave it unlisted.
            return Ok(None);
        }
        self.dst.list_referrer(&listed).await?;
        self.progress.event(Event::Note(format!(
            "copied referrer {} ({})",
            found.digest,
            listed
                .artifact_type
                .as_deref()
                .unwrap_or("no artifact type")
        )));
        Ok(Some(found.digest))
    }

    /// Cosign's tags for `digest` (`sha256-<hex>.sig`, `.att`, `.sbom`),
    /// copied to sit beside the same digest at the destination.
    async fn copy_attachments(self: &Arc<Self>, digest: &Digest) -> Result<Vec<String>, CopyError> {
        let mut written = Vec::new();
        for suffix in ["sig", "att", "sbom"] {
            let tag = format!("{}.{suffix}", digest.to_tag_form());
            let Some(found) = self.src.find_tag(&tag).await? else {
                continue;
            };
            let copied = self.clone().copy_manifest(found, None).await?;
            self.dst.put_tag(&copied, &tag).await?;
            self.progress
                .event(Event::Note(format!("copied {tag} ({})", copied.digest)));
            written.push(tag);
        }
        Ok(written)
    }

    pub(crate) fn blob_error(&self, digest: &Digest, reason: impl std::fmt::Display) -> CopyError {
        CopyError::Blob {
            image: self.image.clone(),
            digest: digest.clone(),
            reason: reason.to_string(),
        }
    }
}
