//! Where a build's blobs go: a staging store while images build, then the
//! OCI image layout once every image has built.
//!
//! This is the one place oci-build writes a layout (blobs by digest, then
//! index.json replaced atomically with one entry per tag), kept small so it
//! can switch to the shared layout module in one move.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest};

use super::{BuildError, BuiltImage};

/// The annotation that names a tag in an OCI layout's index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn io_err(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A content-addressed blob store in the work directory.
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// A store in `dir` (created).
    pub fn new(dir: &Path) -> Result<Staging, BuildError> {
        fs::create_dir_all(dir.join("sha256")).map_err(|e| io_err(dir, e))?;
        Ok(Staging {
            dir: dir.to_owned(),
        })
    }

    /// Where a blob is.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("sha256").join(digest.hex())
    }

    /// A new temporary file to write a blob to.
    pub fn temp(&self) -> Result<(fs::File, PathBuf), BuildError> {
        let file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(|e| io_err(&self.dir, e))?;
        let (file, path) = file.keep().map_err(|e| io_err(&self.dir, e.error))?;
        Ok((file, path))
    }

    /// Moves a finished temporary file to its digest's name.
    pub fn commit(&self, tmp: &Path, digest: &Digest) -> Result<(), BuildError> {
        let dest = self.path(digest);
        fs::rename(tmp, &dest).map_err(|e| io_err(&dest, e))
    }

    /// Stores `bytes` and returns their descriptor.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, BuildError> {
        let digest = Digest::sha256_of(bytes);
        let (mut file, tmp) = self.temp()?;
        file.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        drop(file);
        self.commit(&tmp, &digest)?;
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    }
}

/// Moves the blobs of `images` into the layout at `oci_dir` and tags each
/// image with its name, replacing earlier tags of the same names.
pub fn publish(
    oci_dir: &Path,
    staging: &Staging,
    images: &[&BuiltImage],
) -> Result<(), BuildError> {
    let blobs = oci_dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| io_err(&blobs, e))?;
    let layout_file = oci_dir.join("oci-layout");
    if !layout_file.exists() {
        write_atomically(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let mut wanted: BTreeSet<Digest> = BTreeSet::new();
    for image in images {
        let bytes = fs::read(staging.path(&image.manifest.digest))
            .map_err(|e| io_err(&staging.path(&image.manifest.digest), e))?;
        wanted.insert(image.manifest.digest.clone());
        let parsed = Manifest::parse(&bytes, Some(manifest::OCI_MANIFEST)).map_err(|e| {
            io_err(
                &staging.path(&image.manifest.digest),
                std::io::Error::other(e.to_string()),
            )
        })?;
        for reference in parsed.references() {
            wanted.insert(reference.digest.clone());
        }
    }
    for digest in &wanted {
        let dest = blobs.join(digest.hex());
        if dest.exists() {
            continue;
        }
        let src = staging.path(digest);
        if fs::hard_link(&src, &dest).is_err() {
            let tmp = blobs.join(format!(".tmp-{}", digest.hex()));
            fs::copy(&src, &tmp).map_err(|e| io_err(&src, e))?;
            fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
        }
    }
    let index_path = oci_dir.join("index.json");
    let mut index: serde_json::Value = match fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io_err(
                &index_path,
                std::io::Error::other(format!("not a valid index.json: {e}")),
            )
        })?,
        Err(_) => {
            serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": []})
        }
    };
    let names: BTreeSet<&str> = images.iter().map(|i| i.name.as_str()).collect();
    let mut manifests: Vec<serde_json::Value> = index["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m["annotations"][REF_NAME]
                .as_str()
                .is_none_or(|name| !names.contains(name))
        })
        .collect();
    for image in images {
        let mut descriptor = image.manifest.clone();
        descriptor
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REF_NAME.to_owned(), image.name.clone());
        manifests.push(
            serde_json::to_value(&descriptor)
                .map_err(|e| io_err(&index_path, std::io::Error::other(e.to_string())))?,
        );
    }
    index["manifests"] = serde_json::Value::Array(manifests);
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| io_err(&index_path, std::io::Error::other(e.to_string())))?;
    write_atomically(&index_path, &bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_err(dir, e))?;
    tmp.write_all(bytes).map_err(|e| io_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
    tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    Ok(())
}

/// Downloads `url` into `dir` and returns the file.
pub fn download(image: &str, url: &str, dir: &Path) -> Result<PathBuf, BuildError> {
    let fail = |message: String| BuildError::Import {
        image: image.to_owned(),
        path: url.to_owned(),
        message,
    };
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let key = Digest::sha256_of(url.as_bytes());
    let target_dir = dir.join(&key.hex()[..16]);
    fs::create_dir_all(&target_dir).map_err(|e| io_err(&target_dir, e))?;
    let target = target_dir.join(name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting the HTTP client: {e}")))?;
    let bytes = runtime.block_on(async {
        let response = reqwest::get(url).await.map_err(|e| fail(format!("{e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("the server answered {status}")));
        }
        response.bytes().await.map_err(|e| fail(format!("{e}")))
    })?;
    write_atomically(&target, &bytes)?;
    Ok(target)
}
