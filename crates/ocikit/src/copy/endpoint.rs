//! The two ends of a copy: where manifests and blobs are read ([`Source`]) and
//! where they are written ([`Sink`]). An archive is a layout in a temporary
//! directory, extracted before reading or packed after writing, so the engine
//! only ever sees layouts and registries.
//!
//! Registry blobs stream straight through (download verified by the client,
//! upload with a reopening source so a failed streamed upload is retried);
//! a blob already at the destination is skipped after a `HEAD`, and one in
//! another repository of the same registry is mounted instead of copied.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::OnceCell;

use crate::archive::{self, ArchiveBuilder, ExtractedArchive};
use crate::digest::{Algorithm, Digest};
use crate::layout::{BlobWriter, Layout, LayoutError};
use crate::manifest::Descriptor;
use crate::reference::ImageReference;
use crate::registry::{BlobReader, Client, ClientOptions, Repository};

use super::{BlobOutcome, CopyError, Engine, Event};

/// Where an image is read from.
pub enum Source {
    /// A layout directory, or an extracted archive (kept alive here).
    Layout {
        /// The layout.
        layout: Layout,
        /// The temporary directory of an extracted archive.
        archive: Option<ExtractedArchive>,
        /// The layout's referrers by subject, scanned on first use.
        referrers: OnceCell<HashMap<Digest, Vec<Descriptor>>>,
    },
    /// A registry repository.
    Registry(Repository),
}

/// Where an image is written to.
pub enum Sink {
    /// A layout directory, or the temporary layout of an archive being built.
    Layout {
        /// The layout.
        layout: Layout,
        /// The archive to pack the layout into when the copy is done.
        archive: Option<ArchiveBuilder>,
    },
    /// A registry repository; manifests written are remembered (they are
    /// small) so that tagging re-sends the same bytes.
    Registry {
        /// The repository.
        repo: Repository,
        /// Manifest bytes by digest, for tagging.
        written: Mutex<HashMap<Digest, (String, Bytes)>>,
    },
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CopyError> + Send + 'static,
) -> Result<T, CopyError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CopyError::Task(e.to_string()))?
}

impl Source {
    /// Opens the source side of `reference` (extracting an archive).
    pub async fn open(
        reference: &ImageReference,
        registry: &ClientOptions,
    ) -> Result<Source, CopyError> {
        match reference {
            ImageReference::Layout(r) => Ok(Source::Layout {
                layout: Layout::open(&r.path)?,
                archive: None,
                referrers: OnceCell::new(),
            }),
            ImageReference::Archive(r) => {
                let path = r.path.clone();
                let extracted = blocking(move || Ok(archive::extract(&path)?)).await?;
                Ok(Source::Layout {
                    layout: extracted.layout().clone(),
                    archive: Some(extracted),
                    referrers: OnceCell::new(),
                })
            }
            ImageReference::Registry(r) => {
                let client = Client::new(registry.clone())?;
                Ok(Source::Registry(
                    client.repository(&r.registry, &r.repository),
                ))
            }
        }
    }

    /// The root descriptor `reference` names.
    pub async fn resolve(&self, reference: &ImageReference) -> Result<Descriptor, CopyError> {
        match self {
            Source::Layout { layout, .. } => {
                Ok(layout.resolve(reference.tag(), reference.digest())?)
            }
            Source::Registry(repo) => {
                let wanted = match reference {
                    ImageReference::Registry(r) => r.reference(),
                    other => other.tag().unwrap_or("latest").to_owned(),
                };
                Ok(repo.get_manifest(&wanted).await?.descriptor())
            }
        }
    }

    /// A manifest's bytes, verified against its digest.
    pub async fn manifest(&self, desc: &Descriptor) -> Result<Vec<u8>, CopyError> {
        match self {
            Source::Layout { layout, .. } => Ok(layout.read_manifest(&desc.digest)?),
            Source::Registry(repo) => Ok(repo
                .get_manifest(&desc.digest.to_string())
                .await?
                .bytes
                .to_vec()),
        }
    }

    /// A small blob (an image config), verified and bounded by
    /// [`crate::manifest::MAX_MANIFEST_SIZE`].
    pub async fn small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, CopyError> {
        match self {
            Source::Layout { layout, .. } => Ok(layout.read_manifest(&desc.digest)?),
            Source::Registry(repo) => {
                let (_, reader) = repo.get_blob(&desc.digest).await?;
                let mut bytes = Vec::new();
                reader
                    .take(crate::manifest::MAX_MANIFEST_SIZE as u64)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| CopyError::Blob {
                        image: repo.display_name(),
                        digest: desc.digest.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(bytes)
            }
        }
    }

    /// Every tag of the repository (a layout's ref names).
    pub async fn tags(&self) -> Result<Vec<String>, CopyError> {
        match self {
            Source::Layout { layout, .. } => Ok(layout.tags()?),
            Source::Registry(repo) => Ok(repo.tags().await?),
        }
    }

    /// The OCI 1.1 referrers of a manifest: a registry's referrers API or
    /// its referrers tag schema, or the manifests a layout lists with that
    /// `subject`.
    pub async fn referrers(&self, digest: &Digest) -> Result<Vec<Descriptor>, CopyError> {
        match self {
            Source::Layout {
                layout, referrers, ..
            } => {
                let by_subject = referrers
                    .get_or_try_init(|| {
                        let layout = layout.clone();
                        blocking(move || Ok(layout.referrers_by_subject()?))
                    })
                    .await?;
                Ok(by_subject.get(digest).cloned().unwrap_or_default())
            }
            Source::Registry(repo) => Ok(repo.list_referrers(digest, None).await?.descriptors),
        }
    }

    /// The manifest a tag names, if the tag exists.
    pub async fn find_tag(&self, tag: &str) -> Result<Option<Descriptor>, CopyError> {
        match self {
            Source::Layout { layout, .. } => match layout.resolve(Some(tag), None) {
                Ok(found) => Ok(Some(found)),
                Err(LayoutError::TagNotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Source::Registry(repo) => match repo.get_manifest(tag).await {
                Ok(found) => Ok(Some(found.descriptor())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }
}

impl Sink {
    /// Opens (creating if needed) the destination side of `reference`.
    pub async fn open(
        reference: &ImageReference,
        registry: &ClientOptions,
    ) -> Result<Sink, CopyError> {
        match reference {
            ImageReference::Layout(r) => Ok(Sink::Layout {
                layout: Layout::open_or_create(&r.path)?,
                archive: None,
            }),
            ImageReference::Archive(r) => {
                let builder = ArchiveBuilder::new(&r.path)?;
                Ok(Sink::Layout {
                    layout: builder.layout().clone(),
                    archive: Some(builder),
                })
            }
            ImageReference::Registry(r) => {
                let client = Client::new(registry.clone())?;
                Ok(Sink::Registry {
                    repo: client.repository(&r.registry, &r.repository),
                    written: Mutex::new(HashMap::new()),
                })
            }
        }
    }

    /// Whether the destination holds only OCI media types (layouts, as skopeo
    /// writes them), so Docker v2s2 must be converted.
    pub fn wants_oci(&self) -> bool {
        matches!(self, Sink::Layout { .. })
    }

    /// Whether the destination already has a blob.
    pub async fn has_blob(&self, desc: &Descriptor) -> Result<bool, CopyError> {
        match self {
            Sink::Layout { layout, .. } => Ok(layout.blob_size(&desc.digest)?.is_some()),
            Sink::Registry { repo, .. } => Ok(repo.blob_exists(&desc.digest).await?.is_some()),
        }
    }

    /// Stores a manifest by digest (untagged).
    pub async fn put_manifest(&self, desc: &Descriptor, bytes: Vec<u8>) -> Result<(), CopyError> {
        match self {
            Sink::Layout { layout, .. } => {
                layout.write_blob(&bytes, Some(&desc.digest))?;
                Ok(())
            }
            Sink::Registry { repo, .. } => {
                let bytes = Bytes::from(bytes);
                repo.put_manifest(&desc.digest.to_string(), &desc.media_type, bytes.clone())
                    .await?;
                self.adopt_manifest(desc, bytes);
                Ok(())
            }
        }
    }

    /// Whether the destination registry already holds this exact manifest,
    /// and with it everything it refers to (a registry refuses a manifest
    /// whose blobs are missing), so a re-push need not look at each blob.
    /// Any doubt (an error, a push-only credential) says no; a layout says
    /// no too, its blobs being as cheap to look at as the manifest.
    pub async fn has_manifest(&self, desc: &Descriptor) -> bool {
        match self {
            Sink::Layout { .. } => false,
            Sink::Registry { repo, .. } => matches!(
                repo.head_manifest(&desc.digest.to_string()).await,
                Ok(Some(found)) if found.digest == desc.digest
            ),
        }
    }

    /// Remembers a manifest the destination holds (already, or just
    /// written), so that it can be tagged without being read back.
    pub fn adopt_manifest(&self, desc: &Descriptor, bytes: impl Into<Bytes>) {
        if let Sink::Registry { written, .. } = self {
            if let Ok(mut written) = written.lock() {
                written.insert(desc.digest.clone(), (desc.media_type.clone(), bytes.into()));
            }
        }
    }

    /// Points the destination's tag at the copied root (the last step of a
    /// copy). A layout without a tag lists the manifest untagged.
    pub async fn tag_root(
        &self,
        desc: &Descriptor,
        destination: &ImageReference,
    ) -> Result<(), CopyError> {
        match self {
            Sink::Layout { layout, .. } => {
                let mut entry =
                    Descriptor::new(desc.media_type.clone(), desc.digest.clone(), desc.size);
                entry.artifact_type = desc.artifact_type.clone();
                Ok(layout.set_manifest(&entry, destination.tag())?)
            }
            Sink::Registry { .. } => match (destination.tag(), destination.digest()) {
                (Some(tag), _) => self.put_tag(desc, tag).await,
                // Pinned by digest only: the manifest is already there by digest.
                (None, Some(_)) => Ok(()),
                (None, None) => self.put_tag(desc, "latest").await,
            },
        }
    }

    /// Makes a copied OCI 1.1 referrer findable: a layout lists it untagged
    /// in `index.json` (with its `artifactType` and annotations); a registry
    /// already indexed it when it was pushed (its referrers API, or the tag
    /// schema [`Repository::put_manifest`] updates).
    pub async fn list_referrer(&self, desc: &Descriptor) -> Result<(), CopyError> {
        match self {
            Sink::Layout { layout, .. } => Ok(layout.set_manifest(desc, None)?),
            Sink::Registry { .. } => Ok(()),
        }
    }

    /// Tags an attachment (a cosign `.sig`, `.att` or `.sbom` manifest).
    pub async fn put_tag(&self, desc: &Descriptor, tag: &str) -> Result<(), CopyError> {
        match self {
            Sink::Layout { layout, .. } => {
                let entry =
                    Descriptor::new(desc.media_type.clone(), desc.digest.clone(), desc.size);
                Ok(layout.set_manifest(&entry, Some(tag))?)
            }
            Sink::Registry { repo, written } => {
                let found = written
                    .lock()
                    .ok()
                    .and_then(|w| w.get(&desc.digest).cloned());
                let (media_type, bytes) = found.ok_or_else(|| {
                    CopyError::Task(format!(
                        "manifest {} was not written before tagging",
                        desc.digest
                    ))
                })?;
                repo.put_manifest(tag, &media_type, bytes).await?;
                Ok(())
            }
        }
    }

    /// Completes the destination: packs an archive.
    pub async fn finish(self) -> Result<(), CopyError> {
        match self {
            Sink::Layout {
                archive: Some(builder),
                ..
            } => blocking(move || Ok(builder.finish()?)).await,
            Sink::Layout { archive: None, .. } | Sink::Registry { .. } => Ok(()),
        }
    }
}

/// Moves one blob's bytes from source to destination, verified on the way.
pub(crate) async fn transfer_blob(
    engine: &Arc<Engine>,
    blob: &Descriptor,
) -> Result<BlobOutcome, CopyError> {
    match (&engine.src, &engine.dst) {
        (Source::Layout { layout: src, .. }, Sink::Layout { layout: dst, .. }) => {
            let (src, dst) = (src.clone(), dst.clone());
            let engine = engine.clone();
            let blob = blob.clone();
            blocking(move || {
                copy_layout_blob(&engine, &src, &dst, &blob)?;
                Ok(BlobOutcome::Copied)
            })
            .await
        }
        (Source::Layout { layout: src, .. }, Sink::Registry { repo, .. }) => {
            let path = src.blob_path(&blob.digest);
            let counter = engine.clone();
            let digest = blob.digest.clone();
            repo.put_blob_with(&blob.digest, blob.size, move || {
                let path = path.clone();
                let counter = counter.clone();
                let digest = digest.clone();
                async move {
                    let file = tokio::fs::File::open(&path).await?;
                    let reader: BlobReader = Box::pin(Counting {
                        inner: tokio::io::BufReader::with_capacity(CHUNK, file),
                        engine: counter,
                        digest,
                    });
                    Ok(reader)
                }
            })
            .await
            .map_err(|e| engine.blob_error(&blob.digest, e))?;
            Ok(BlobOutcome::Copied)
        }
        (Source::Registry(src), Sink::Layout { layout: dst, .. }) => {
            let (_, mut reader) = src.get_blob(&blob.digest).await?;
            let mut writer = dst.blob_writer(blob.digest.algorithm())?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| engine.blob_error(&blob.digest, e))?;
                if n == 0 {
                    break;
                }
                writer
                    .write_all(&buf[..n])
                    .map_err(|e| engine.blob_error(&blob.digest, e))?;
                engine.bytes.fetch_add(n as u64, Ordering::Relaxed);
                engine.progress.event(Event::BlobProgress {
                    digest: blob.digest.clone(),
                    bytes: n as u64,
                });
            }
            let digest = blob.digest.clone();
            blocking(move || Ok(writer.commit(Some(&digest))?)).await?;
            Ok(BlobOutcome::Copied)
        }
        (Source::Registry(src), Sink::Registry { repo, .. }) => {
            let same_registry = src.registry() == repo.registry() && src.name() != repo.name();
            if same_registry && repo.mount_blob(&blob.digest, src.name()).await? {
                return Ok(BlobOutcome::Mounted);
            }
            let (_, reader) = src.get_blob(&blob.digest).await?;
            let reader: BlobReader = Box::pin(Counting {
                inner: reader,
                engine: engine.clone(),
                digest: blob.digest.clone(),
            });
            repo.put_blob(&blob.digest, blob.size, reader)
                .await
                .map_err(|e| engine.blob_error(&blob.digest, e))?;
            Ok(BlobOutcome::Copied)
        }
    }
}

/// An async reader that reports the bytes it passes on as progress.
struct Counting<R> {
    inner: R,
    engine: Arc<Engine>,
    digest: Digest,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.engine.bytes.fetch_add(n, Ordering::Relaxed);
            self.engine.progress.event(Event::BlobProgress {
                digest: self.digest.clone(),
                bytes: n,
            });
        }
        polled
    }
}

/// The chunk size of file-to-file copies and progress events.
const CHUNK: usize = 256 * 1024;

fn copy_layout_blob(
    engine: &Engine,
    src: &Layout,
    dst: &Layout,
    blob: &Descriptor,
) -> Result<(), CopyError> {
    let mut reader = src.open_blob(&blob.digest, Some(blob.size))?;
    let mut writer = dst.blob_writer(blob.digest.algorithm())?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| engine.blob_error(&blob.digest, e))?;
        if n == 0 {
            break;
        }
        writer
            .write_all(&buf[..n])
            .map_err(|e| engine.blob_error(&blob.digest, e))?;
        engine.bytes.fetch_add(n as u64, Ordering::Relaxed);
        engine.progress.event(Event::BlobProgress {
            digest: blob.digest.clone(),
            bytes: n as u64,
        });
    }
    writer.commit(Some(&blob.digest))?;
    Ok(())
}

/// A blocking reader over a source blob, verified at end of stream; for the
/// passes that transform a blob (recompression).
pub(crate) async fn open_blob_reader(
    engine: &Arc<Engine>,
    blob: &Descriptor,
) -> Result<Box<dyn Read + Send>, CopyError> {
    match &engine.src {
        Source::Layout { layout, .. } => {
            Ok(Box::new(layout.open_blob(&blob.digest, Some(blob.size))?))
        }
        Source::Registry(repo) => {
            let (_, reader) = repo.get_blob(&blob.digest).await?;
            Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
        }
    }
}

/// A new blob whose digest is known only once it is written (a recompressed
/// layer), on its way to the destination.
pub(crate) enum Staged {
    /// Written straight into the destination layout.
    Layout(BlobWriter),
    /// Written to a temporary file, hashed on the way, then uploaded (a
    /// registry needs the digest before the upload ends).
    File(
        std::io::BufWriter<tempfile::NamedTempFile>,
        crate::digest::Hasher,
    ),
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Staged::Layout(w) => w.write(buf),
            Staged::File(w, hasher) => {
                let n = w.write(buf)?;
                hasher.update(&buf[..n]);
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Staged::Layout(w) => w.flush(),
            Staged::File(w, _) => w.flush(),
        }
    }
}

/// Where a transformed blob is written before it is committed.
pub(crate) fn staging_writer(engine: &Engine, algorithm: Algorithm) -> Result<Staged, CopyError> {
    match &engine.dst {
        Sink::Layout { layout, .. } => Ok(Staged::Layout(layout.blob_writer(algorithm)?)),
        Sink::Registry { .. } => {
            let file = tempfile::NamedTempFile::new()
                .map_err(|e| CopyError::Task(format!("creating a temporary file: {e}")))?;
            Ok(Staged::File(
                std::io::BufWriter::with_capacity(CHUNK, file),
                crate::digest::Hasher::new(algorithm),
            ))
        }
    }
}

/// Commits a staged blob at the destination; returns its digest and size.
pub(crate) async fn commit_staged(
    engine: &Arc<Engine>,
    staged: Staged,
) -> Result<(Digest, u64), CopyError> {
    match staged {
        Staged::Layout(writer) => blocking(move || Ok(writer.commit(None)?)).await,
        Staged::File(writer, hasher) => {
            let size = hasher.bytes_hashed();
            let digest = hasher.finish();
            let file = writer
                .into_inner()
                .map_err(|e| engine.blob_error(&digest, e.into_error()))?;
            let Sink::Registry { repo, .. } = &engine.dst else {
                return Err(CopyError::Task("a staged file needs a registry".into()));
            };
            if repo.blob_exists(&digest).await?.is_none() {
                let path = file.path().to_path_buf();
                repo.put_blob_with(&digest, size, move || {
                    let path = path.clone();
                    async move {
                        let file = tokio::fs::File::open(&path).await?;
                        let reader: BlobReader = Box::pin(file);
                        Ok(reader)
                    }
                })
                .await?;
            }
            drop(file);
            Ok((digest, size))
        }
    }
}
