//! The two ends of a copy: where manifests and blobs are read ([`Source`]) and
//! where they are written ([`Sink`]). An archive is a layout in a temporary
//! directory, extracted before reading or packed after writing, so the engine
//! only ever sees layouts and registries.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::archive::{self, ArchiveBuilder, ExtractedArchive};
use crate::digest::{Algorithm, Digest};
use crate::layout::{BlobWriter, Layout, LayoutError};
use crate::manifest::Descriptor;
use crate::reference::ImageReference;

use super::{BlobOutcome, CopyError, Engine, Event};

/// Where an image is read from.
pub enum Source {
    /// A layout directory, or an extracted archive (kept alive here).
    Layout {
        /// The layout.
        layout: Layout,
        /// The temporary directory of an extracted archive.
        archive: Option<ExtractedArchive>,
    },
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
    pub async fn open(reference: &ImageReference) -> Result<Source, CopyError> {
        match reference {
            ImageReference::Layout(r) => Ok(Source::Layout {
                layout: Layout::open(&r.path)?,
                archive: None,
            }),
            ImageReference::Archive(r) => {
                let path = r.path.clone();
                let extracted = blocking(move || Ok(archive::extract(&path)?)).await?;
                Ok(Source::Layout {
                    layout: extracted.layout().clone(),
                    archive: Some(extracted),
                })
            }
            ImageReference::Registry(r) => Err(CopyError::Task(format!(
                "docker://{r}: this build of ocikit has no registry client"
            ))),
        }
    }

    /// The root descriptor `reference` names.
    pub async fn resolve(&self, reference: &ImageReference) -> Result<Descriptor, CopyError> {
        match self {
            Source::Layout { layout, .. } => {
                Ok(layout.resolve(reference.tag(), reference.digest())?)
            }
        }
    }

    /// A manifest's bytes, verified against its digest.
    pub async fn manifest(&self, desc: &Descriptor) -> Result<Vec<u8>, CopyError> {
        match self {
            Source::Layout { layout, .. } => Ok(layout.read_manifest(&desc.digest)?),
        }
    }

    /// A small blob (an image config), verified and bounded by
    /// [`crate::manifest::MAX_MANIFEST_SIZE`].
    pub async fn small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, CopyError> {
        match self {
            Source::Layout { layout, .. } => Ok(layout.read_manifest(&desc.digest)?),
        }
    }

    /// Every tag of the repository (a layout's ref names).
    pub async fn tags(&self) -> Result<Vec<String>, CopyError> {
        match self {
            Source::Layout { layout, .. } => Ok(layout.tags()?),
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
        }
    }
}

impl Sink {
    /// Opens (creating if needed) the destination side of `reference`.
    pub async fn open(reference: &ImageReference) -> Result<Sink, CopyError> {
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
            ImageReference::Registry(r) => Err(CopyError::Task(format!(
                "docker://{r}: this build of ocikit has no registry client"
            ))),
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
        }
    }

    /// Stores a manifest by digest (untagged).
    pub async fn put_manifest(&self, desc: &Descriptor, bytes: Vec<u8>) -> Result<(), CopyError> {
        match self {
            Sink::Layout { layout, .. } => {
                layout.write_blob(&bytes, Some(&desc.digest))?;
                Ok(())
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
        }
    }

    /// Completes the destination: packs an archive.
    pub async fn finish(self) -> Result<(), CopyError> {
        match self {
            Sink::Layout {
                archive: Some(builder),
                ..
            } => blocking(move || Ok(builder.finish()?)).await,
            Sink::Layout { archive: None, .. } => Ok(()),
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
    }
}

/// A new blob whose digest is known only once it is written (a recompressed
/// layer), on its way to the destination.
pub(crate) enum Staged {
    /// Written straight into the destination layout.
    Layout(BlobWriter),
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Staged::Layout(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Staged::Layout(w) => w.flush(),
        }
    }
}

/// Where a transformed blob is written before it is committed.
pub(crate) fn staging_writer(engine: &Engine, algorithm: Algorithm) -> Result<Staged, CopyError> {
    match &engine.dst {
        Sink::Layout { layout, .. } => Ok(Staged::Layout(layout.blob_writer(algorithm)?)),
    }
}

/// Commits a staged blob at the destination; returns its digest and size.
pub(crate) async fn commit_staged(
    _engine: &Arc<Engine>,
    staged: Staged,
) -> Result<(Digest, u64), CopyError> {
    match staged {
        Staged::Layout(writer) => blocking(move || Ok(writer.commit(None)?)).await,
    }
}
