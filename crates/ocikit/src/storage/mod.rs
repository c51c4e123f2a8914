//! Registry storage: the one small trait the registry server stores through
//! (blobs by digest, repository indexes, uploads), and its backends.
//!
//! The HTTP layer ([`crate::server`]) speaks only [`Storage`], so a later
//! backend on S3-compatible object storage (for several stateless replicas)
//! drops in without touching it. The first backend, [`fs::FsStorage`], keeps
//! every repository as a standard OCI image layout on a local filesystem, with
//! one shared, deduplicated blob store underneath; see the [`fs`] module for
//! the on-disk format and the name-to-directory mapping. [`scrub::scrub`]
//! checks such a root end to end.
//!
//! The trait's methods take repository names and tags that the server has
//! already validated with [`crate::name`]; backends validate again, so that no
//! caller can make them touch a path outside their root.

pub mod fs;
pub mod scrub;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use crate::digest::{Digest, DigestError};
use crate::manifest::{Descriptor, Manifest};
use crate::name::NameError;

/// A stream of bytes going into or coming out of storage: request bodies
/// are streamed into uploads and blobs are streamed out, never buffered whole.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send + 'static>>;

/// How a manifest is addressed in a request: by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    /// A tag (`latest`), already checked against the tag grammar.
    Tag(String),
    /// A digest (`sha256:…`).
    Digest(Digest),
}

impl std::fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestRef::Tag(tag) => f.write_str(tag),
            ManifestRef::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

/// A manifest as stored: its exact bytes, never re-serialised.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The media type it was pushed with (its `Content-Type` on the way out).
    pub media_type: String,
    /// The bytes as pushed.
    pub bytes: Bytes,
}

/// A manifest on its way in: the exact bytes, their digest and the parsed
/// view the server already validated (the backend indexes its `subject`,
/// `artifactType` and annotations for the referrers API).
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The media type: the `Content-Type` it came with, else the body's own.
    pub media_type: String,
    /// The bytes as received.
    pub bytes: Bytes,
    /// The parsed view of `bytes`.
    pub manifest: Manifest,
}

/// A blob being read: the blob's total size and the bytes of the asked range.
pub struct BlobRead {
    /// Size of the whole blob (for `Content-Range`).
    pub size: u64,
    /// The bytes of the asked range (or the whole blob).
    pub stream: ByteStream,
}

/// An inclusive byte range, as HTTP `Range` and `Content-Range` write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true: a byte range holds at least one byte (clippy asks for it).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Why a storage operation failed. The server maps each to the distribution
/// spec's error codes; the messages name the thing and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A repository name or tag the grammar rejects.
    #[error(transparent)]
    Name(#[from] NameError),
    /// No upload session with this id in this repository.
    #[error("blob upload {0} is unknown (finished, cancelled or never started); start a new one with POST")]
    UploadUnknown(String),
    /// A chunk that does not start where the upload ends (out of order or retried).
    #[error("chunk starts at byte {got} but upload {id} holds {size} bytes; send the chunk starting at byte {size}")]
    OutOfOrder {
        /// The upload session.
        id: String,
        /// Where the chunk said it starts.
        got: u64,
        /// How many bytes the upload holds.
        size: u64,
    },
    /// Uploaded content does not hash to the digest the client declared.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The request body broke off or timed out while it was being stored.
    #[error("request body broke off after {received} bytes: {source}")]
    Body {
        /// Bytes stored before the break (the upload keeps them).
        received: u64,
        /// What went wrong.
        source: io::Error,
    },
    /// A blob delete aimed at a manifest, which must go through the manifest API.
    #[error(
        "{0} is a manifest of this repository; delete it with DELETE /v2/<name>/manifests/{0}"
    )]
    ManifestBlob(Digest),
    /// A blob a manifest names went away before the manifest was recorded
    /// (garbage collection took it); push the blob again.
    #[error("blob {0} is not in the repository (any more); push it again, then the manifest")]
    BlobMissing(Digest),
    /// Another process (a running oci-serve, or `oci-serve gc`) has the root open.
    #[error("{} is in use by another oci-serve (a server or `oci-serve gc`); stop it first, or let the server collect garbage itself (storage.gc)", path.display())]
    InUse {
        /// The root.
        path: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory it was about.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Stored data is not what it should be (a broken index.json, a missing blob).
    #[error("{}: {reason}; run the integrity check (scrub) on the root", path.display())]
    Corrupt {
        /// The file it is about.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl StorageError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a registry needs from its storage, and nothing more.
///
/// Blobs are visible per repository (a blob pushed to `a` is not readable
/// from `b` until it is mounted there); manifests are kept with their exact
/// bytes and media type; tags point at manifests. Every write is atomic and
/// durable when the returned future resolves: an acknowledged push survives a
/// crash of the process.
pub trait Storage: Send + Sync + 'static {
    /// The size of a blob in `repo`, or `None` when it is not there.
    fn blob_size(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Reads a blob (or the given range of it; the server has checked the
    /// range against [`Storage::blob_size`]), or `None` when it is not there.
    fn blob_read(
        &self,
        repo: &str,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> impl Future<Output = Result<Option<BlobRead>>> + Send;

    /// Makes a blob of repository `from` visible in `repo` too (a
    /// cross-repository mount). `false` when `from` does not have it.
    fn blob_mount(
        &self,
        repo: &str,
        from: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes a blob from `repo`. `false` when it was not there.
    fn blob_delete(&self, repo: &str, digest: &Digest)
        -> impl Future<Output = Result<bool>> + Send;

    /// Opens an upload session in `repo` and returns its id.
    fn upload_start(&self, repo: &str) -> impl Future<Output = Result<String>> + Send;

    /// How many bytes an upload holds, or `None` when it is unknown.
    fn upload_size(&self, repo: &str, id: &str)
        -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Appends a body to an upload, hashing as it goes. With `offset`, the
    /// chunk must start exactly where the upload ends
    /// ([`StorageError::OutOfOrder`] otherwise). Returns the new size.
    fn upload_append(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Completes an upload as the blob `digest`: the content must hash to it
    /// ([`StorageError::Digest`] otherwise, and nothing is stored). Returns
    /// the blob's size. The session is gone afterwards either way.
    fn upload_finish(
        &self,
        repo: &str,
        id: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Cancels an upload. `false` when it was unknown.
    fn upload_cancel(&self, repo: &str, id: &str) -> impl Future<Output = Result<bool>> + Send;

    /// A manifest by tag or digest, or `None` when `repo` does not have it.
    fn manifest_get(
        &self,
        repo: &str,
        reference: &ManifestRef,
    ) -> impl Future<Output = Result<Option<StoredManifest>>> + Send;

    /// Stores a manifest (the server has checked that what it references is
    /// there) and, with `tag`, points the tag at it.
    fn manifest_put(
        &self,
        repo: &str,
        tag: Option<&str>,
        manifest: NewManifest,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes a manifest and every tag pointing at it. `false` when unknown.
    fn manifest_delete(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes a tag (the manifest stays reachable by digest). `false` when unknown.
    fn tag_delete(&self, repo: &str, tag: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The tags of `repo`, sorted, or `None` when the repository is unknown.
    fn tags(&self, repo: &str) -> impl Future<Output = Result<Option<Vec<String>>>> + Send;

    /// Descriptors of the manifests in `repo` whose `subject` is `digest`,
    /// each with its `artifactType` (falling back to the config's media type)
    /// and its annotations, as the referrers API lists them.
    fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<Descriptor>>> + Send;

    /// Every repository, sorted.
    fn repositories(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}
