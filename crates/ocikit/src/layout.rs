//! OCI image layouts on disk: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.
//!
//! A layout is both what `oci-build` produces and what `oci-copy` reads and
//! writes, so it must never be left half-written:
//!
//! - a blob is streamed into a temporary file inside the layout, hashed while
//!   written, verified against the digest it must have, fsynced, renamed into
//!   `blobs/<alg>/<hex>` and the directory fsynced: a blob file that exists is
//!   complete and correct, which is what lets an interrupted copy resume;
//! - `index.json` is rewritten to a temporary file and renamed over the old one,
//!   under an exclusive `flock` on the layout directory, so concurrent writers
//!   never lose each other's tags;
//! - tags are the `org.opencontainers.image.ref.name` annotation, as skopeo
//!   writes them; a new manifest with a tag takes the tag from any older one;
//! - every read is verified: manifests are hashed before they are returned, blob
//!   readers fail at end of stream on a mismatch.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::digest::{Algorithm, Digest, DigestError, Hasher, VerifyingReader};
use crate::manifest::{self, Descriptor, Manifest, ManifestError, MAX_MANIFEST_SIZE};

/// The annotation that holds a manifest's tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The content of the `oci-layout` file.
pub const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Prefix of the temporary files a layout writer leaves only when killed
/// (skopeo uses the same place: the layout's top directory).
const TEMP_PREFIX: &str = ".ocikit-tmp-";

/// Why a layout operation failed; each names the layout path.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The directory has no (valid) `oci-layout` file.
    #[error("{path}: not an OCI image layout (no valid oci-layout file); create one with oci-copy or oci-build")]
    NotALayout {
        /// The directory.
        path: PathBuf,
    },
    /// `index.json` is not a valid index.
    #[error("{path}/index.json: malformed image index: {reason}")]
    BadIndex {
        /// The layout.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No manifest has that tag.
    #[error("{path}: no image tagged {tag:?} (tags in this layout: {available})")]
    TagNotFound {
        /// The layout.
        path: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags that exist, comma-separated, or "none".
        available: String,
    },
    /// No tag was given and the layout does not hold exactly one image
    /// (referrers of a listed image and repeated digests not counted).
    #[error("{path}: holds {count} images; name one with oci:{path}:TAG or oci:{path}@DIGEST")]
    Ambiguous {
        /// The layout.
        path: PathBuf,
        /// How many manifests index.json lists.
        count: usize,
    },
    /// A blob the caller needs is not there.
    #[error("{path}: blob {digest} is missing")]
    BlobMissing {
        /// The layout.
        path: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// Content did not match its digest or size.
    #[error("{path}: {source}")]
    Digest {
        /// The layout or blob.
        path: PathBuf,
        /// The mismatch.
        #[source]
        source: Box<DigestError>,
    },
    /// A blob's size differs from its descriptor's.
    #[error("{path}: blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The layout.
        path: PathBuf,
        /// The blob.
        digest: Digest,
        /// From the descriptor.
        expected: u64,
        /// On disk.
        actual: u64,
    },
    /// A manifest in the layout cannot be read.
    #[error("{path}: manifest {digest}: {source}")]
    Manifest {
        /// The layout.
        path: PathBuf,
        /// The manifest.
        digest: Digest,
        /// Why.
        #[source]
        source: Box<ManifestError>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens an existing layout, checking its `oci-layout` file.
    pub fn open(path: &Path) -> Result<Layout, LayoutError> {
        let marker = path.join("oci-layout");
        let text = match fs::read(&marker) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::NotALayout {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(&marker)(e)),
        };
        let version = serde_json::from_slice::<Value>(&text)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion").cloned());
        if !matches!(version, Some(Value::String(_))) {
            return Err(LayoutError::NotALayout {
                path: path.to_path_buf(),
            });
        }
        Ok(Layout {
            root: path.to_path_buf(),
        })
    }

    /// Opens a layout, creating an empty one (directories, `oci-layout`, an
    /// empty `index.json`) if `path` does not hold one yet.
    pub fn open_or_create(path: &Path) -> Result<Layout, LayoutError> {
        if path.join("oci-layout").exists() {
            return Layout::open(path);
        }
        fs::create_dir_all(path.join("blobs").join("sha256")).map_err(io_err(path))?;
        let layout = Layout {
            root: path.to_path_buf(),
        };
        if !path.join("index.json").exists() {
            let empty = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": manifest::OCI_INDEX,
                "manifests": [],
            });
            layout.replace_file("index.json", empty.to_string().as_bytes())?;
        }
        layout.replace_file("oci-layout", OCI_LAYOUT_CONTENT.as_bytes())?;
        Ok(layout)
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The manifests `index.json` lists, in order.
    pub fn manifests(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let (_, manifests) = self.read_index()?;
        Ok(manifests)
    }

    /// Every tag, in index order.
    pub fn tags(&self) -> Result<Vec<String>, LayoutError> {
        Ok(self
            .manifests()?
            .iter()
            .filter_map(|d| d.annotation(REF_NAME).map(str::to_owned))
            .collect())
    }

    /// Every OCI 1.1 referrer `index.json` lists (signatures, SBOMs and
    /// attestations are listed untagged, as oci-sign, oci-copy and oras
    /// write them), keyed by the digest of its `subject`, each as the
    /// referrers API would describe it (`artifactType`, annotations). Reads
    /// every listed manifest once; a layout has no other referrers index.
    pub fn referrers_by_subject(
        &self,
    ) -> Result<std::collections::HashMap<Digest, Vec<Descriptor>>, LayoutError> {
        let mut found: std::collections::HashMap<Digest, Vec<Descriptor>> = Default::default();
        let mut seen = std::collections::HashSet::new();
        for entry in self.manifests()? {
            if !manifest::is_manifest_type(&entry.media_type) || !seen.insert(entry.digest.clone())
            {
                continue;
            }
            let bytes = self.read_manifest(&entry.digest)?;
            let parsed = Manifest::parse(&bytes, Some(&entry.media_type)).map_err(|source| {
                LayoutError::Manifest {
                    path: self.root.clone(),
                    digest: entry.digest.clone(),
                    source: Box::new(source),
                }
            })?;
            if let Some(subject) = &parsed.subject {
                let descriptor = parsed.referrer_descriptor(entry.digest, bytes.len() as u64);
                found
                    .entry(subject.digest.clone())
                    .or_default()
                    .push(descriptor);
            }
        }
        Ok(found)
    }

    /// The referrers of one manifest (see [`Layout::referrers_by_subject`]),
    /// optionally only those of one artifact type.
    pub fn referrers(
        &self,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, LayoutError> {
        let mut found = self
            .referrers_by_subject()?
            .remove(digest)
            .unwrap_or_default();
        if let Some(kind) = artifact_type {
            found.retain(|d| d.artifact_type.as_deref() == Some(kind));
        }
        Ok(found)
    }

    /// Finds a manifest: by digest (listed in index.json or merely present as
    /// a blob), by tag, or the only one there is.
    pub fn resolve(
        &self,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<Descriptor, LayoutError> {
        let manifests = self.manifests()?;
        if let Some(digest) = digest {
            if let Some(found) = manifests.iter().find(|d| &d.digest == digest) {
                return Ok(found.clone());
            }
            let bytes = self.read_manifest(digest)?;
            let parsed = Manifest::parse(&bytes, None).map_err(|source| LayoutError::Manifest {
                path: self.root.clone(),
                digest: digest.clone(),
                source: Box::new(source),
            })?;
            return Ok(Descriptor::new(
                parsed.media_type,
                digest.clone(),
                bytes.len() as u64,
            ));
        }
        if let Some(tag) = tag {
            return manifests
                .iter()
                .find(|d| d.annotation(REF_NAME) == Some(tag))
                .cloned()
                .ok_or_else(|| {
                    let tags: Vec<_> = manifests
                        .iter()
                        .filter_map(|d| d.annotation(REF_NAME))
                        .collect();
                    LayoutError::TagNotFound {
                        path: self.root.clone(),
                        tag: tag.to_owned(),
                        available: if tags.is_empty() {
                            "none".to_owned()
                        } else {
                            tags.join(", ")
                        },
                    }
                });
        }
        if let [only] = manifests.as_slice() {
            return Ok(only.clone());
        }
        let candidates = self.images_besides_referrers(manifests)?;
        match candidates.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(LayoutError::Ambiguous {
                path: self.root.clone(),
                count: candidates.len(),
            }),
        }
    }

    /// The distinct manifests of `manifests` that are not referrers of
    /// another one listed: what "the image in this layout" can mean once
    /// oci-sign or oci-copy has stored its signatures beside it untagged,
    /// or one image carries two tags.
    fn images_besides_referrers(
        &self,
        manifests: Vec<Descriptor>,
    ) -> Result<Vec<Descriptor>, LayoutError> {
        let referrers = self.referrers_by_subject()?;
        let listed: std::collections::HashSet<&Digest> =
            manifests.iter().map(|d| &d.digest).collect();
        let is_referrer_of_listed: std::collections::HashSet<Digest> = referrers
            .iter()
            .filter(|(subject, _)| listed.contains(subject))
            .flat_map(|(_, found)| found.iter().map(|d| d.digest.clone()))
            .collect();
        let mut seen = std::collections::HashSet::new();
        Ok(manifests
            .into_iter()
            .filter(|d| !is_referrer_of_listed.contains(&d.digest))
            .filter(|d| seen.insert(d.digest.clone()))
            .collect())
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The size of a blob if it is present. Blob files only appear complete
    /// and verified (see [`BlobWriter::commit`]), so presence is enough.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, LayoutError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// A reader over a blob that fails at end of stream unless the content
    /// matches `digest` (and `size`, when given).
    pub fn open_blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<VerifyingReader<File>, LayoutError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::BlobMissing {
                    path: self.root.clone(),
                    digest: digest.clone(),
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(VerifyingReader::new(file, digest.clone(), size))
    }

    /// A whole manifest (or config), verified and bounded by [`MAX_MANIFEST_SIZE`].
    pub fn read_manifest(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let reader = self.open_blob(digest, None)?;
        let mut bytes = Vec::new();
        reader
            .take(MAX_MANIFEST_SIZE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(LayoutError::Manifest {
                path: self.root.clone(),
                digest: digest.clone(),
                source: Box::new(ManifestError::TooLarge(bytes.len())),
            });
        }
        digest
            .verify(&bytes)
            .map_err(|source| LayoutError::Digest {
                path: path.clone(),
                source: Box::new(source),
            })?;
        Ok(bytes)
    }

    /// A writer for a new blob; see [`BlobWriter::commit`].
    pub fn blob_writer(&self, algorithm: Algorithm) -> Result<BlobWriter, LayoutError> {
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.root)
            .map_err(io_err(&self.root))?;
        Ok(BlobWriter {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Hasher::new(algorithm),
            root: self.root.clone(),
        })
    }

    /// Writes a small blob (a manifest or config) from memory, verified
    /// against `expected` if given; returns its digest.
    pub fn write_blob(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<Digest, LayoutError> {
        let algorithm = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, bytes);
        if let Some(expected) = expected {
            if &digest != expected {
                return Err(LayoutError::Digest {
                    path: self.root.clone(),
                    source: Box::new(DigestError::Mismatch {
                        expected: expected.clone(),
                        actual: digest,
                    }),
                });
            }
        }
        if self.blob_size(&digest)?.is_some() {
            return Ok(digest);
        }
        let mut writer = self.blob_writer(algorithm)?;
        writer.write_all(bytes).map_err(io_err(&self.root))?;
        writer.commit(Some(&digest))?;
        Ok(digest)
    }

    /// Records a manifest in `index.json`, atomically and under the layout's
    /// lock. With a tag, the manifest takes it (any other entry with the same
    /// tag is removed, as skopeo does); without, it is added unless listed.
    pub fn set_manifest(
        &self,
        descriptor: &Descriptor,
        tag: Option<&str>,
    ) -> Result<(), LayoutError> {
        self.set_manifests(&[(descriptor.clone(), tag.map(str::to_owned))])
    }

    /// Records several manifests, each as [`Layout::set_manifest`] does, in
    /// one replacement of `index.json`: a reader sees every tag move or none,
    /// which is how a build of several images tags all of them or nothing.
    pub fn set_manifests(
        &self,
        entries: &[(Descriptor, Option<String>)],
    ) -> Result<(), LayoutError> {
        let _lock = self.lock()?;
        let (mut index, mut manifests) = self.read_index()?;
        for (descriptor, tag) in entries {
            let mut entry = descriptor.clone();
            match tag {
                Some(tag) => {
                    manifests.retain(|d| d.annotation(REF_NAME) != Some(tag.as_str()));
                    entry
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(REF_NAME.to_owned(), tag.clone());
                    manifests.push(entry);
                }
                None => {
                    if let Some(annotations) = entry.annotations.as_mut() {
                        annotations.remove(REF_NAME);
                        if annotations.is_empty() {
                            entry.annotations = None;
                        }
                    }
                    if !manifests.iter().any(|d| d.digest == entry.digest) {
                        manifests.push(entry);
                    }
                }
            }
        }
        index.insert(
            "manifests".to_owned(),
            serde_json::to_value(&manifests).map_err(|e| LayoutError::BadIndex {
                path: self.root.clone(),
                reason: e.to_string(),
            })?,
        );
        index
            .entry("schemaVersion")
            .or_insert_with(|| Value::from(2));
        let bytes =
            serde_json::to_vec(&Value::Object(index)).map_err(|e| LayoutError::BadIndex {
                path: self.root.clone(),
                reason: e.to_string(),
            })?;
        self.replace_file("index.json", &bytes)
    }

    /// Adds a file the caller wrote and hashed itself (a build's staged
    /// layer) as the blob `digest`, without reading it again: hard-linked
    /// when `file` is on the same filesystem, copied through a temporary
    /// file otherwise, fsynced, and visible under its digest only once
    /// complete. Only for files whose digest was computed while writing
    /// them; content from elsewhere goes through [`Layout::blob_writer`],
    /// which verifies it.
    pub fn adopt_blob(&self, file: &Path, digest: &Digest) -> Result<(), LayoutError> {
        if self.blob_size(digest)?.is_some() {
            return Ok(());
        }
        let dir = self.root.join("blobs").join(digest.algorithm().as_str());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let dest = dir.join(digest.hex());
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(io_err(file))?;
        match fs::hard_link(file, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                let mut temp = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .tempfile_in(&self.root)
                    .map_err(io_err(&self.root))?;
                let mut source = File::open(file).map_err(io_err(file))?;
                io::copy(&mut source, temp.as_file_mut()).map_err(io_err(file))?;
                temp.as_file().sync_all().map_err(io_err(&dest))?;
                temp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
            }
        }
        sync_dir(&dir)
    }

    /// Checks the whole layout: every manifest reachable from `index.json`
    /// and every blob they refer to is present and matches its digest and
    /// size. Returns the number of blobs checked.
    pub fn check(&self) -> Result<usize, LayoutError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = self.manifests()?;
        while let Some(descriptor) = stack.pop() {
            if !seen.insert(descriptor.digest.clone()) {
                continue;
            }
            if manifest::is_manifest_type(&descriptor.media_type) {
                let bytes = self.read_manifest(&descriptor.digest)?;
                if bytes.len() as u64 != descriptor.size {
                    return Err(LayoutError::SizeMismatch {
                        path: self.root.clone(),
                        digest: descriptor.digest.clone(),
                        expected: descriptor.size,
                        actual: bytes.len() as u64,
                    });
                }
                let parsed =
                    Manifest::parse(&bytes, Some(&descriptor.media_type)).map_err(|source| {
                        LayoutError::Manifest {
                            path: self.root.clone(),
                            digest: descriptor.digest.clone(),
                            source: Box::new(source),
                        }
                    })?;
                stack.extend(parsed.references().into_iter().cloned());
            } else {
                let path = self.blob_path(&descriptor.digest);
                let mut reader = self.open_blob(&descriptor.digest, Some(descriptor.size))?;
                io::copy(&mut reader, &mut io::sink()).map_err(io_err(&path))?;
            }
        }
        Ok(seen.len())
    }

    fn read_index(&self) -> Result<(Map<String, Value>, Vec<Descriptor>), LayoutError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let bad = |reason: String| LayoutError::BadIndex {
            path: self.root.clone(),
            reason,
        };
        let mut index: Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let manifests = match index.remove("manifests") {
            Some(list) => serde_json::from_value(list).map_err(|e| bad(e.to_string()))?,
            None => Vec::new(),
        };
        Ok((index, manifests))
    }

    /// Writes `name` in the layout's top directory via a temporary file,
    /// fsync and rename, then fsyncs the directory.
    fn replace_file(&self, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let path = self.root.join(name);
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.root)
            .map_err(io_err(&self.root))?;
        temp.write_all(bytes).map_err(io_err(&path))?;
        temp.as_file().sync_all().map_err(io_err(&path))?;
        temp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        sync_dir(&self.root)
    }

    fn lock(&self) -> Result<File, LayoutError> {
        let dir = File::open(&self.root).map_err(io_err(&self.root))?;
        dir.lock().map_err(io_err(&self.root))?;
        Ok(dir)
    }
}

fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A blob being written into a layout. Nothing is visible in `blobs/` until
/// [`BlobWriter::commit`]; dropping the writer removes the temporary file.
pub struct BlobWriter {
    file: io::BufWriter<tempfile::NamedTempFile>,
    hasher: Hasher,
    root: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.bytes_hashed()
    }

    /// Verifies the content against `expected` (when known), fsyncs it,
    /// renames it to `blobs/<alg>/<hex>` and fsyncs the directory. Returns the
    /// digest and size. On a mismatch the temporary file is removed and
    /// nothing appears in the layout.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), LayoutError> {
        let size = self.hasher.bytes_hashed();
        let digest = self.hasher.finish();
        if let Some(expected) = expected {
            if &digest != expected {
                return Err(LayoutError::Digest {
                    path: self.root.clone(),
                    source: Box::new(DigestError::Mismatch {
                        expected: expected.clone(),
                        actual: digest,
                    }),
                });
            }
        }
        let temp = self
            .file
            .into_inner()
            .map_err(|e| io_err(&self.root)(e.into_error()))?;
        temp.as_file().sync_all().map_err(io_err(&self.root))?;
        let dir = self.root.join("blobs").join(digest.algorithm().as_str());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(digest.hex());
        temp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        sync_dir(&dir)?;
        Ok((digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_bytes(config: &Digest, size: usize) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":{size}}},"layers":[]}}"#,
            manifest::OCI_MANIFEST,
            manifest::OCI_CONFIG
        )
        .into_bytes()
    }

    fn image(layout: &Layout, n: u8) -> Descriptor {
        let config = vec![b'{', b'0' + n, b'}'];
        let c = layout.write_blob(&config, None).expect("config");
        let m = manifest_bytes(&c, config.len());
        let d = layout.write_blob(&m, None).expect("manifest");
        Descriptor::new(manifest::OCI_MANIFEST, d, m.len() as u64)
    }

    #[test]
    fn finds_referrers_by_subject() {
        let dir = tempfile::tempdir().expect("tmp");
        let layout = Layout::open_or_create(dir.path()).expect("create");
        let base = image(&layout, 1);
        layout.set_manifest(&base, Some("1.0")).expect("tag");
        let config = layout.write_blob(b"{}", None).expect("empty");
        let referrer = |artifact_type: &str, subject: &Digest| {
            let bytes = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"{artifact_type}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{subject}","size":1}},"annotations":{{"a":"b"}}}}"#,
                manifest::OCI_MANIFEST,
                manifest::OCI_EMPTY,
                manifest::OCI_MANIFEST
            );
            let digest = layout.write_blob(bytes.as_bytes(), None).expect("referrer");
            let d = Descriptor::new(manifest::OCI_MANIFEST, digest, bytes.len() as u64);
            layout.set_manifest(&d, None).expect("list");
            d
        };
        let sbom = referrer("application/spdx+json", &base.digest);
        let sig = referrer(
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            &base.digest,
        );
        let sig_of_sbom = referrer(
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            &sbom.digest,
        );
        let all = layout.referrers(&base.digest, None).expect("referrers");
        let digests: Vec<_> = all.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(digests, [sbom.digest.clone(), sig.digest.clone()]);
        assert_eq!(
            all[0].artifact_type.as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(all[0].annotation("a"), Some("b"));
        let sboms = layout
            .referrers(&base.digest, Some("application/spdx+json"))
            .expect("filtered");
        assert_eq!(sboms.len(), 1);
        let nested = layout.referrers(&sbom.digest, None).expect("nested");
        assert_eq!(nested[0].digest, sig_of_sbom.digest);
        assert!(layout
            .referrers(&sig.digest, None)
            .expect("none")
            .is_empty());
        // Without a tag the layout still means its one image: referrers of
        // it (and of them) and a second tag on it are not other images.
        layout
            .set_manifest(&base, Some("latest"))
            .expect("second tag");
        assert_eq!(
            layout.resolve(None, None).expect("one image").digest,
            base.digest
        );
        let other = image(&layout, 2);
        layout.set_manifest(&other, None).expect("another image");
        let err = layout.resolve(None, None).expect_err("two images");
        assert!(err.to_string().contains("holds 2 images"), "{err}");
        // A listed manifest that is corrupt fails the scan, naming it.
        fs::write(layout.blob_path(&sig.digest), b"tampered").expect("tamper");
        let err = layout.referrers(&base.digest, None).expect_err("corrupt");
        assert!(err.to_string().contains(sig.digest.hex()), "{err}");
    }

    #[test]
    fn creates_writes_tags_and_resolves() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("l");
        let layout = Layout::open_or_create(&path).expect("create");
        assert_eq!(
            fs::read_to_string(path.join("oci-layout")).expect("marker"),
            OCI_LAYOUT_CONTENT
        );
        let a = image(&layout, 1);
        let b = image(&layout, 2);
        layout.set_manifest(&a, Some("v1")).expect("tag a");
        layout.set_manifest(&b, Some("v2")).expect("tag b");
        layout.set_manifest(&b, Some("v1")).expect("move v1");
        layout.set_manifest(&a, None).expect("untagged a");
        assert_eq!(layout.tags().expect("tags"), ["v2", "v1"]);
        let again = Layout::open(&path).expect("open");
        assert_eq!(
            again.resolve(Some("v1"), None).expect("v1").digest,
            b.digest
        );
        assert_eq!(
            again.resolve(None, Some(&a.digest)).expect("a").digest,
            a.digest
        );
        let err = again.resolve(Some("nope"), None).expect_err("missing");
        assert!(
            err.to_string().contains("tags in this layout: v2, v1"),
            "{err}"
        );
        let err = again.resolve(None, None).expect_err("ambiguous");
        // Three entries, two images: b carries two tags.
        assert!(err.to_string().contains("holds 2 images"), "{err}");
        assert_eq!(again.check().expect("valid"), 4);
        let leftovers = fs::read_dir(&path)
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn rejects_mismatched_blobs_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let layout = Layout::open_or_create(dir.path()).expect("create");
        let wanted = Digest::sha256_of(b"good");
        let mut w = layout.blob_writer(Algorithm::Sha256).expect("writer");
        w.write_all(b"evil").expect("write");
        let err = w.commit(Some(&wanted)).expect_err("mismatch").to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        assert_eq!(layout.blob_size(&wanted).expect("stat"), None);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .expect("blobs")
                .count(),
            0
        );
        assert!(layout.write_blob(b"evil", Some(&wanted)).is_err());
    }

    #[test]
    fn reading_detects_corruption() {
        let dir = tempfile::tempdir().expect("tmp");
        let layout = Layout::open_or_create(dir.path()).expect("create");
        let a = image(&layout, 3);
        layout.set_manifest(&a, Some("t")).expect("tag");
        fs::write(layout.blob_path(&a.digest), b"{}").expect("corrupt");
        let err = layout
            .read_manifest(&a.digest)
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        assert!(layout.check().is_err());
        let err = Layout::open(&dir.path().join("blobs")).expect_err("not a layout");
        assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    }

    #[test]
    fn keeps_unknown_index_fields() {
        let dir = tempfile::tempdir().expect("tmp");
        let layout = Layout::open_or_create(dir.path()).expect("create");
        fs::write(
            dir.path().join("index.json"),
            r#"{"schemaVersion":2,"annotations":{"x":"y"},"manifests":[]}"#,
        )
        .expect("index");
        let a = image(&layout, 4);
        layout.set_manifest(&a, Some("t")).expect("tag");
        let index: Value =
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).expect("read"))
                .expect("json");
        assert_eq!(index["annotations"]["x"], "y");
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "t");
    }

    #[test]
    fn several_tags_move_in_one_index_write_and_staged_blobs_are_adopted() {
        let dir = tempfile::tempdir().expect("tmp");
        let layout = Layout::open_or_create(&dir.path().join("l")).expect("create");
        let a = image(&layout, 5);
        let b = image(&layout, 6);
        layout.set_manifest(&a, Some("old")).expect("tag");
        layout
            .set_manifests(&[
                (a.clone(), Some("x".to_owned())),
                (b.clone(), Some("old".to_owned())),
                (b.clone(), None),
            ])
            .expect("tags");
        assert_eq!(layout.tags().expect("tags"), ["x", "old"]);
        assert_eq!(layout.manifests().expect("manifests").len(), 2);

        let staged = dir.path().join("staged");
        fs::write(&staged, b"layer bytes").expect("write");
        let digest = Digest::sha256_of(b"layer bytes");
        layout.adopt_blob(&staged, &digest).expect("adopt");
        layout.adopt_blob(&staged, &digest).expect("adopt twice");
        let mut read = Vec::new();
        layout
            .open_blob(&digest, Some(11))
            .expect("open")
            .read_to_end(&mut read)
            .expect("read");
        assert_eq!(read, b"layer bytes");
        let err = layout
            .adopt_blob(&dir.path().join("missing"), &Digest::sha256_of(b"m"))
            .expect_err("missing file");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
