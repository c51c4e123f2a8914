//! Where a build's blobs go: a staging store while images build, then the
//! OCI image layout once every image has built.
//!
//! Staged blobs reach the output through [`crate::layout`], the layout code
//! every tool shares (atomic blob writes, one atomic index.json update for
//! all tags of a build).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::layout::Layout;
use crate::manifest::{self, Descriptor, Manifest};

use super::{BuildError, BuiltImage};

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

    /// Adds `file`, a blob whose digest is known (a base image's layer in
    /// another layout), by hard link or, across filesystems, by copy.
    pub fn link(&self, file: &Path, digest: &Digest) -> Result<(), BuildError> {
        let dest = self.path(digest);
        if dest.exists() {
            return Ok(());
        }
        if fs::hard_link(file, &dest).is_ok() {
            return Ok(());
        }
        let (mut out, tmp) = self.temp()?;
        let mut src = fs::File::open(file).map_err(|e| io_err(file, e))?;
        std::io::copy(&mut src, &mut out).map_err(|e| io_err(&tmp, e))?;
        drop(out);
        self.commit(&tmp, digest)
    }

    /// Removes every blob not in `keep`, and any temporary file left by an
    /// interrupted build. Returns the number of blobs removed.
    pub fn retain(&self, keep: &BTreeSet<Digest>) -> Result<usize, BuildError> {
        let mut removed = 0;
        let blobs = self.dir.join("sha256");
        for dir in [&self.dir, &blobs] {
            for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
                let entry = entry.map_err(|e| io_err(dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let stale = if dir == &blobs {
                    Digest::new(crate::digest::Algorithm::Sha256, &name)
                        .map_or(true, |d| !keep.contains(&d))
                } else {
                    name.starts_with(".tmp-")
                };
                if stale && !path.is_dir() {
                    match fs::remove_file(&path) {
                        Ok(()) => removed += usize::from(dir == &blobs),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&path, e)),
                    }
                }
            }
        }
        Ok(removed)
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

/// Puts the blobs of `images` (manifests or indexes, and everything they
/// refer to) into the layout at `oci_dir` (created if needed) and tags each
/// image with its name, replacing earlier tags of the same names, through
/// [`Layout`]: blobs appear complete or not at all, and every tag is set in
/// one atomic replacement of index.json, so a failure tags nothing.
pub fn publish(
    oci_dir: &Path,
    staging: &Staging,
    images: &[&BuiltImage],
) -> Result<(), BuildError> {
    let mut wanted: BTreeSet<Digest> = BTreeSet::new();
    let mut stack: Vec<Descriptor> = images.iter().map(|i| i.manifest.clone()).collect();
    while let Some(descriptor) = stack.pop() {
        if !wanted.insert(descriptor.digest.clone()) {
            continue;
        }
        if manifest::is_manifest_type(&descriptor.media_type) {
            let path = staging.path(&descriptor.digest);
            let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
            let parsed = Manifest::parse(&bytes, Some(&descriptor.media_type))
                .map_err(|e| io_err(&path, std::io::Error::other(e.to_string())))?;
            stack.extend(parsed.references().into_iter().cloned());
        }
    }
    let layout = Layout::open_or_create(oci_dir)?;
    for digest in &wanted {
        layout.adopt_blob(&staging.path(digest), digest)?;
    }
    let entries: Vec<(Descriptor, Option<String>)> = images
        .iter()
        .map(|image| (image.manifest.clone(), Some(image.name.clone())))
        .collect();
    layout.set_manifests(&entries)?;
    Ok(())
}

/// Downloads `url` into `dir` (a directory per URL) and returns the file,
/// streamed to disk. With `expected` (a sha256 in hex), a file already
/// there with that content is used without asking the server again: a
/// hash-pinned download cannot change, so a rebuild needs no network.
pub fn download(
    image: &str,
    url: &str,
    dir: &Path,
    expected: Option<&str>,
) -> Result<PathBuf, BuildError> {
    let fail = |message: String| BuildError::Import {
        image: image.to_owned(),
        path: url.to_owned(),
        message,
    };
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let target_dir = download_dir(dir, url);
    fs::create_dir_all(&target_dir).map_err(|e| io_err(&target_dir, e))?;
    let target = target_dir.join(name);
    if let Some(hex) = expected {
        if target.is_file() && super::cache::sha256_file(&target)?.hex() == hex {
            return Ok(target);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting the HTTP client: {e}")))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(&target_dir).map_err(|e| io_err(&target_dir, e))?;
    runtime.block_on(async {
        let mut response = reqwest::get(url).await.map_err(|e| fail(format!("{e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("the server answered {status}")));
        }
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(format!("{e}")))? {
            tmp.write_all(&chunk).map_err(|e| io_err(&target, e))?;
        }
        Ok(())
    })?;
    tmp.as_file().sync_all().map_err(|e| io_err(&target, e))?;
    tmp.persist(&target).map_err(|e| io_err(&target, e.error))?;
    Ok(target)
}

/// The directory under `dir` that downloads of `url` go to.
pub fn download_dir(dir: &Path, url: &str) -> PathBuf {
    dir.join(&Digest::sha256_of(url.as_bytes()).hex()[..16])
}

/// Removes every download directory under `dir` that is not in `used`.
pub fn prune_downloads(dir: &Path, used: &BTreeSet<PathBuf>) -> Result<(), BuildError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        if !used.contains(&path) {
            super::fs::remove_tree(&path)?;
        }
    }
    Ok(())
}
