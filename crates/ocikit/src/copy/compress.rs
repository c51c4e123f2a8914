//! Layer recompression (`--dest-compress-format gzip|zstd`): decompress a
//! layer and compress it again in one streaming pass, hashing the new bytes as
//! they are written. The new layer has a new digest, so the manifest that
//! lists it changes too, and the copy says so.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use crate::layer::Compression;
use crate::manifest::{self, Descriptor};

use super::{BlobOutcome, CopyError, Engine, Event};

/// The media type of a layer recompressed with `to`, in the family of the
/// original (Docker stays Docker where Docker has the type).
fn recompressed_media_type(original: &str, to: Compression) -> &'static str {
    let docker = original.starts_with("application/vnd.docker.");
    match (to, docker) {
        (Compression::Gzip, true) => manifest::DOCKER_LAYER_GZIP,
        (Compression::None, true) => super::convert::DOCKER_LAYER_TAR,
        (to, _) => to.oci_media_type(),
    }
}

/// Recompresses `blob` into the destination if it is a layer in another
/// compression; `Ok(None)` when it should be copied as it is.
pub(crate) async fn recompress(
    engine: &Arc<Engine>,
    blob: &Descriptor,
    to: Compression,
) -> Result<Option<Descriptor>, CopyError> {
    let Some(current) = Compression::from_media_type(&blob.media_type) else {
        return Ok(None);
    };
    if current == to {
        return Ok(None);
    }
    engine.progress.event(Event::BlobStarted {
        digest: blob.digest.clone(),
        size: blob.size,
    });
    let source = super::endpoint::open_blob_reader(engine, blob).await?;
    let engine2 = engine.clone();
    let blob2 = blob.clone();
    let staged = tokio::task::spawn_blocking(move || {
        let staged = super::endpoint::staging_writer(&engine2, blob2.digest.algorithm())?;
        let counting = Counting {
            inner: staged,
            engine: &engine2,
            blob: &blob2,
        };
        let (counting, _) = crate::layer::recompress(source, to, counting)
            .map_err(|e| engine2.blob_error(&blob2.digest, e))?;
        let staged = counting.inner;
        Ok::<_, CopyError>(staged)
    })
    .await
    .map_err(|e| CopyError::Task(e.to_string()))??;
    let written = super::endpoint::commit_staged(engine, staged).await?;
    let mut out = blob.clone();
    out.media_type = recompressed_media_type(&blob.media_type, to).to_owned();
    out.digest = written.0;
    out.size = written.1;
    engine.progress.event(Event::Note(format!(
        "recompressed layer {} with {}: digest is now {}",
        blob.digest,
        to.name(),
        out.digest
    )));
    engine.progress.event(Event::BlobDone {
        digest: blob.digest.clone(),
        how: BlobOutcome::Copied,
    });
    Ok(Some(out))
}

/// A writer that counts the bytes it passes on, for progress.
struct Counting<'a, W> {
    inner: W,
    engine: &'a Engine,
    blob: &'a Descriptor,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.engine.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.engine.progress.event(Event::BlobProgress {
            digest: self.blob.digest.clone(),
            bytes: n as u64,
        });
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            recompressed_media_type(manifest::DOCKER_LAYER_GZIP, Compression::Zstd),
            manifest::OCI_LAYER_ZSTD
        );
        assert_eq!(
            recompressed_media_type(super::super::convert::DOCKER_LAYER_TAR, Compression::Gzip),
            manifest::DOCKER_LAYER_GZIP
        );
    }
}
