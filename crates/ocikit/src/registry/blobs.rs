//! Blob transfer: `HEAD` to skip what is already there, cross-repository
//! mounts, verified streaming downloads, and uploads that never hold a large
//! blob in memory.
//!
//! Uploads: a blob of at most [`MONOLITHIC_LIMIT`] bytes is read into memory
//! and sent as one `PUT` (`POST` then `PUT ?digest=`), which can be retried
//! as often as `--retry-times` allows. A larger one is streamed in a single
//! `PATCH` straight from its reader, then closed by an empty `PUT ?digest=`;
//! memory stays at a few buffers whatever its size. A streamed body cannot be
//! sent twice, so [`Repository::put_blob`] (one reader) does not retry a
//! failed `PATCH`, while [`Repository::put_blob_with`] takes a function that
//! reopens the source and retries the whole upload with a fresh reader.
//!
//! Downloads: [`Repository::get_blob`] returns a reader that hashes as it
//! streams and fails with an I/O error of kind `InvalidData` at the end if
//! the content does not match the digest (or the announced size), so nothing
//! unverified is ever committed by a caller that reads to EOF first.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use url::Url;

use super::auth::{self, Access};
use super::client::Repository;
use super::RegistryError;
use crate::digest::{Digest, Hasher};

/// A blob's bytes as an async stream.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Blobs up to this size are uploaded in one retryable `PUT` from memory;
/// larger ones are streamed.
pub const MONOLITHIC_LIMIT: u64 = 8 * 1024 * 1024;

/// Chunk size for streamed uploads: large enough for few syscalls, small
/// enough that parallel uploads stay far below the memory budget.
const STREAM_CHUNK: usize = 256 * 1024;

/// The marker of a one-shot source asked to reopen (see [`Repository::put_blob`]).
const NOT_REOPENABLE: &str = "the blob source cannot be reopened for a retry";

impl Repository {
    /// Whether a blob is in the repository (`HEAD`): its size, or `None`.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let url = self.url(&format!("blobs/{digest}")).await?;
        let resp = self
            .send(Access::Pull, &[], |http| http.head(url.clone()))
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self
                .fail(resp, &Method::HEAD, Access::Pull, &format!("blob {digest}"))
                .await),
        }
    }

    /// Streams a blob: its size and a reader that verifies the digest while
    /// streaming (an `InvalidData` I/O error at EOF on mismatch).
    pub async fn get_blob(&self, digest: &Digest) -> Result<(u64, BlobReader), RegistryError> {
        let url = self.url(&format!("blobs/{digest}")).await?;
        let resp = self
            .send(Access::Pull, &[], |http| http.get(url.clone()))
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self
                .fail(resp, &Method::GET, Access::Pull, &format!("blob {digest}"))
                .await);
        }
        let size = match resp.content_length() {
            Some(size) => size,
            None => self.blob_exists(digest).await?.unwrap_or(0),
        };
        let stream = resp
            .bytes_stream()
            .map(|chunk| chunk.map_err(io::Error::other));
        let reader = tokio_util::io::StreamReader::new(stream);
        Ok((
            size,
            Box::pin(VerifyingReader::new(
                Box::pin(reader),
                digest.clone(),
                Some(size),
                url.to_string(),
            )),
        ))
    }

    /// Uploads a blob from one reader: monolithic for small blobs (retried),
    /// one streamed `PATCH` for large ones (not retried: the reader is spent;
    /// use [`Repository::put_blob_with`] to allow retries).
    pub async fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: BlobReader,
    ) -> Result<(), RegistryError> {
        let mut once = Some(body);
        self.put_blob_with(digest, size, move || {
            let body = once.take();
            async move { body.ok_or_else(|| io::Error::other(NOT_REOPENABLE)) }
        })
        .await
    }

    /// Uploads a blob, calling `open` for a fresh reader on each attempt, so
    /// that even a streamed upload is retried after a transient failure.
    pub async fn put_blob_with<F, Fut>(
        &self,
        digest: &Digest,
        size: u64,
        mut open: F,
    ) -> Result<(), RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<BlobReader>>,
    {
        if size <= MONOLITHIC_LIMIT {
            let reader = open().await.map_err(|source| RegistryError::Source {
                url: self.display_name(),
                source,
            })?;
            let bytes = read_verified(reader, digest, size, &self.display_name()).await?;
            let location = self.start_upload(&[]).await?;
            let url = with_digest(location, digest);
            let resp = self
                .send(Access::Push, &[], |http| {
                    http.put(url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(bytes.clone())
                })
                .await?;
            return self.finish_upload(resp, digest).await;
        }
        let times = self.retry_policy().times;
        let mut attempt = 0;
        let mut reader = open().await.map_err(|source| RegistryError::Source {
            url: self.display_name(),
            source,
        })?;
        loop {
            match self.streamed_upload(digest, size, reader).await {
                Ok(()) => return Ok(()),
                Err(Streamed::Final(e)) => return Err(e),
                Err(Streamed::Transient(e)) => {
                    if attempt >= times {
                        return Err(e);
                    }
                    // A fresh reader for the retry; a one-shot source ends here.
                    match open().await {
                        Ok(fresh) => reader = fresh,
                        Err(_) => return Err(e),
                    }
                    tokio::time::sleep(self.retry_policy().delay(attempt, None)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One streamed upload: `POST`, one `PATCH` with the whole blob, `PUT`.
    async fn streamed_upload(
        &self,
        digest: &Digest,
        size: u64,
        reader: BlobReader,
    ) -> Result<(), Streamed> {
        let location = self.start_upload(&[]).await.map_err(Streamed::Final)?;
        let http = self.http_client().await.map_err(Streamed::Final)?;
        let counted = CountingReader {
            inner: reader,
            hasher: Hasher::for_digest(digest),
            expected: digest.clone(),
            size,
            finished: false,
        };
        let stream = tokio_util::io::ReaderStream::with_capacity(counted, STREAM_CHUNK);
        let req = http
            .patch(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        let resp = match self.send_once(Access::Push, req).await {
            Ok(resp) => resp,
            Err(e) => {
                // A source error shows up as the request's cause.
                if let RegistryError::Connect { reason, .. } = &e {
                    if reason.contains(SOURCE_MARK) {
                        return Err(Streamed::Final(RegistryError::BadUpload {
                            url: location.to_string(),
                            reason: reason.clone(),
                        }));
                    }
                }
                return Err(Streamed::Transient(e));
            }
        };
        let status = resp.status();
        if status != StatusCode::ACCEPTED && !status.is_success() {
            let transient = super::retry::retryable_status(status.as_u16());
            let err = self
                .fail(
                    resp,
                    &Method::PATCH,
                    Access::Push,
                    &format!("upload of {digest}"),
                )
                .await;
            return Err(if transient {
                Streamed::Transient(err)
            } else {
                Streamed::Final(err)
            });
        }
        let next = self.location(&resp, &location).map_err(Streamed::Final)?;
        let url = with_digest(next, digest);
        let resp = self
            .send(Access::Push, &[], |http| {
                http.put(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await
            .map_err(Streamed::Final)?;
        self.finish_upload(resp, digest)
            .await
            .map_err(Streamed::Final)
    }

    /// Opens an upload session (`POST /blobs/uploads/`): its location.
    async fn start_upload(&self, extra_scopes: &[String]) -> Result<Url, RegistryError> {
        let url = self.url("blobs/uploads/").await?;
        let resp = self
            .send(Access::Push, extra_scopes, |http| {
                http.post(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self
                .fail(resp, &Method::POST, Access::Push, "upload session")
                .await);
        }
        self.location(&resp, &url)
    }

    /// The `Location` of an answer, resolved against the request URL.
    fn location(&self, resp: &reqwest::Response, request: &Url) -> Result<Url, RegistryError> {
        let value = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::InvalidResponse {
                url: request.to_string(),
                reason: "upload answer without a Location header".into(),
            })?;
        request
            .join(value)
            .map_err(|e| RegistryError::InvalidResponse {
                url: request.to_string(),
                reason: format!("upload Location {value:?} is not a URL: {e}"),
            })
    }

    async fn finish_upload(
        &self,
        resp: reqwest::Response,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if resp.status() == StatusCode::CREATED || resp.status().is_success() {
            return Ok(());
        }
        Err(self
            .fail(
                resp,
                &Method::PUT,
                Access::Push,
                &format!("upload of {digest}"),
            )
            .await)
    }

    /// Mounts a blob from another repository of the same registry: `true`
    /// when mounted (201); `false` when the registry opened an upload instead
    /// (202; that session is cancelled, upload with [`Repository::put_blob`]).
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let mut url = self.url("blobs/uploads/").await?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let extra = [auth::repository_scope(from, Access::Pull)];
        let resp = self
            .send(Access::Push, &extra, |http| {
                http.post(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(session) = self.location(&resp, &url) {
                    // Best effort: an abandoned session expires on its own.
                    let _ = self
                        .send(Access::Push, &[], |http| http.delete(session.clone()))
                        .await;
                }
                Ok(false)
            }
            _ => Err(self
                .fail(
                    resp,
                    &Method::POST,
                    Access::Push,
                    &format!("blob {digest} in {from}"),
                )
                .await),
        }
    }
}

/// Whether a streamed upload may be retried.
enum Streamed {
    Transient(RegistryError),
    Final(RegistryError),
}

/// Appends `digest=` to an upload location (which may carry its own query).
fn with_digest(mut location: Url, digest: &Digest) -> Url {
    location
        .query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    location
}

/// Reads a small blob into memory, checking its size and digest before
/// anything is sent.
async fn read_verified(
    mut reader: BlobReader,
    digest: &Digest,
    size: u64,
    what: &str,
) -> Result<bytes::Bytes, RegistryError> {
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    (&mut reader)
        .take(size + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|source| RegistryError::Source {
            url: what.to_owned(),
            source,
        })?;
    if buf.len() as u64 != size {
        return Err(RegistryError::BadUpload {
            url: what.to_owned(),
            reason: format!(
                "{digest} was announced as {size} bytes but the source has {}{}",
                if buf.len() as u64 > size {
                    "more than "
                } else {
                    ""
                },
                buf.len().min(usize::try_from(size).unwrap_or(usize::MAX))
            ),
        });
    }
    let actual = Digest::of(digest.algorithm(), &buf);
    if &actual != digest {
        return Err(RegistryError::BadUpload {
            url: what.to_owned(),
            reason: format!("hashes to {actual}, not {digest}"),
        });
    }
    Ok(bytes::Bytes::from(buf))
}

/// The text that marks a streamed upload's source error in an error chain.
const SOURCE_MARK: &str = "blob source";

/// Hashes and counts a blob as it is streamed up, failing the upload (rather
/// than letting the registry store it) if it is not the promised size, and
/// reporting a digest mismatch clearly.
struct CountingReader {
    inner: BlobReader,
    hasher: Hasher,
    expected: Digest,
    size: u64,
    finished: bool,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(io::Error::new(e.kind(), format!("{SOURCE_MARK}: {e}"))))
            }
            Poll::Pending => return Poll::Pending,
        }
        let new = &buf.filled()[before..];
        if new.is_empty() && buf.remaining() > 0 {
            if !this.finished {
                this.finished = true;
                let hashed = this.hasher.bytes_hashed();
                if hashed != this.size {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{SOURCE_MARK}: ended after {hashed} of {} bytes", this.size),
                    )));
                }
                let actual = this.hasher.clone().finish();
                if actual != this.expected {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{SOURCE_MARK}: hashes to {actual}, not {}", this.expected),
                    )));
                }
            }
            return Poll::Ready(Ok(()));
        }
        this.hasher.update(new);
        if this.hasher.bytes_hashed() > this.size {
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{SOURCE_MARK}: longer than the announced {} bytes",
                    this.size
                ),
            )));
        }
        Poll::Ready(Ok(()))
    }
}

/// A reader that hashes what it streams and fails at EOF unless the content
/// matches the expected digest (and size, when known).
pub struct VerifyingReader {
    inner: BlobReader,
    hasher: Option<Hasher>,
    expected: Digest,
    size: Option<u64>,
    origin: String,
}

impl VerifyingReader {
    /// Wraps `inner`, which should produce the content of `expected`
    /// (`origin` names where it comes from in error messages).
    pub fn new(inner: BlobReader, expected: Digest, size: Option<u64>, origin: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::for_digest(&expected)),
            expected,
            size,
            origin,
        }
    }
}

impl AsyncRead for VerifyingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = &buf.filled()[before..];
        if new.is_empty() && buf.remaining() > 0 {
            // End of stream: verify once.
            if let Some(hasher) = this.hasher.take() {
                let got = hasher.bytes_hashed();
                if let Some(size) = this.size.filter(|s| *s != got) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: blob {} ended after {got} of {size} bytes",
                            this.origin, this.expected
                        ),
                    )));
                }
                let actual = hasher.finish();
                if actual != this.expected {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: content does not match its digest: expected {}, got {actual}",
                            this.origin, this.expected
                        ),
                    )));
                }
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(hasher) = this.hasher.as_mut() {
            hasher.update(new);
            if let Some(size) = this.size.filter(|s| hasher.bytes_hashed() > *s) {
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: blob {} is longer than its {size} bytes",
                        this.origin, this.expected
                    ),
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(reader: BlobReader) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut reader = reader;
        reader.read_to_end(&mut out).await?;
        Ok(out)
    }

    fn boxed(data: &'static [u8]) -> BlobReader {
        Box::pin(data)
    }

    #[tokio::test]
    async fn verifying_reader_accepts_and_rejects() {
        let good = Digest::sha256_of(b"hello");
        let r = VerifyingReader::new(boxed(b"hello"), good.clone(), Some(5), "o".into());
        assert_eq!(drain(Box::pin(r)).await.expect("ok"), b"hello");

        let r = VerifyingReader::new(boxed(b"hellO"), good.clone(), Some(5), "o".into());
        let err = drain(Box::pin(r)).await.expect_err("mismatch");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );

        let r = VerifyingReader::new(boxed(b"hell"), good.clone(), Some(5), "o".into());
        let err = drain(Box::pin(r)).await.expect_err("short");
        assert!(
            err.to_string().contains("ended after 4 of 5 bytes"),
            "{err}"
        );

        let r = VerifyingReader::new(boxed(b"hello!"), good, Some(5), "o".into());
        let err = drain(Box::pin(r)).await.expect_err("long");
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[tokio::test]
    async fn small_uploads_are_checked_before_sending() {
        let digest = Digest::sha256_of(b"abc");
        let bytes = read_verified(boxed(b"abc"), &digest, 3, "r/x")
            .await
            .expect("ok");
        assert_eq!(&bytes[..], b"abc");
        let err = read_verified(boxed(b"abcd"), &digest, 3, "r/x")
            .await
            .expect_err("long");
        assert!(err.to_string().contains("announced as 3 bytes"), "{err}");
        let err = read_verified(boxed(b"abd"), &digest, 3, "r/x")
            .await
            .expect_err("bad");
        assert!(err.to_string().contains("hashes to"), "{err}");
    }

    #[test]
    fn digest_query_keeps_session_state() {
        let digest = Digest::sha256_of(b"x");
        let url = with_digest(
            Url::parse("http://r/v2/a/blobs/uploads/u?_state=abc").expect("url"),
            &digest,
        );
        assert_eq!(
            url.as_str(),
            format!(
                "http://r/v2/a/blobs/uploads/u?_state=abc&digest=sha256%3A{}",
                digest.hex()
            )
        );
    }
}
