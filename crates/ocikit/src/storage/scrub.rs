//! The integrity check of a filesystem storage root: every blob re-hashed,
//! every layout file parsed, every index entry and every manifest reference
//! resolvable.
//!
//! Tests run it after concurrent pushes and after a `kill -9` of the server;
//! an operator runs it after a disk scare. It only reads: a repair is a
//! separate, deliberate step.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fs::{blob_path, repository_dir, walk_repositories, PRIVATE_DIR};
use super::{Result, StorageError};
use crate::digest::{Algorithm, Digest};
use crate::manifest::{Descriptor, Manifest};

/// What the check found.
#[derive(Debug, Default)]
pub struct ScrubReport {
    /// Repositories looked at.
    pub repositories: usize,
    /// Distinct blob files re-hashed (hard links count once).
    pub blobs: usize,
    /// Manifests parsed and resolved.
    pub manifests: usize,
    /// Everything that is wrong; empty for a healthy root.
    pub problems: Vec<Problem>,
}

/// One thing wrong in a storage root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file it is about.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

struct Scrubber {
    hashed: HashSet<(u64, u64)>,
    report: ScrubReport,
}

/// Checks a storage root written by [`super::fs::FsStorage`]. An `Err` means
/// the check itself could not run (an unreadable directory); what is wrong
/// with the data is in [`ScrubReport::problems`].
pub fn scrub(root: &Path) -> Result<ScrubReport> {
    let mut s = Scrubber {
        hashed: HashSet::new(),
        report: ScrubReport::default(),
    };
    let store = root.join(PRIVATE_DIR);
    if store.is_dir() {
        s.blob_dir(&store)?;
    }
    let mut repositories = Vec::new();
    walk_repositories(root, "", &mut repositories)?;
    for name in repositories {
        s.report.repositories += 1;
        let dir = repository_dir(root, &name)?;
        s.repository(&dir)?;
    }
    Ok(s.report)
}

impl Scrubber {
    fn problem(&mut self, path: impl Into<PathBuf>, reason: impl Into<String>) {
        self.report.problems.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// Re-hashes every blob under `layout/blobs/<alg>/`.
    fn blob_dir(&mut self, layout: &Path) -> Result<()> {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = layout.join("blobs").join(algorithm.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io(dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(expected) = Digest::new(algorithm, &name) else {
                    self.problem(&path, "file name is not a digest");
                    continue;
                };
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) => {
                        self.problem(&path, format!("cannot stat: {e}"));
                        continue;
                    }
                };
                if !self.hashed.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                self.report.blobs += 1;
                match hash(&path, algorithm) {
                    Ok(actual) if actual == expected => {}
                    Ok(actual) => self.problem(&path, format!("content hashes to {actual}")),
                    Err(e) => self.problem(&path, format!("cannot read: {e}")),
                }
            }
        }
        Ok(())
    }

    fn repository(&mut self, dir: &Path) -> Result<()> {
        let layout_path = dir.join("oci-layout");
        match fs::read(&layout_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<LayoutFile>(&b).map_err(|e| e.to_string()))
        {
            Ok(layout) if layout.image_layout_version == "1.0.0" => {}
            Ok(layout) => self.problem(
                &layout_path,
                format!(
                    "unknown imageLayoutVersion {:?}",
                    layout.image_layout_version
                ),
            ),
            Err(e) => self.problem(&layout_path, format!("not an oci-layout file: {e}")),
        }
        self.blob_dir(dir)?;
        let index_path = dir.join("index.json");
        let index = match fs::read(&index_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<IndexFile>(&b).map_err(|e| e.to_string()))
        {
            Ok(index) => index,
            Err(e) => {
                self.problem(&index_path, format!("not an OCI index: {e}"));
                return Ok(());
            }
        };
        let mut seen = HashSet::new();
        for entry in index.manifests {
            if !seen.insert(entry.digest.clone()) {
                continue;
            }
            self.manifest(dir, &entry, 0);
        }
        Ok(())
    }

    /// Checks one manifest and, for an index, the manifests it lists.
    fn manifest(&mut self, dir: &Path, descriptor: &Descriptor, depth: usize) {
        let path = blob_path(dir, &descriptor.digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.problem(
                    &path,
                    format!("manifest {} missing: {e}", descriptor.digest),
                );
                return;
            }
        };
        self.report.manifests += 1;
        if bytes.len() as u64 != descriptor.size {
            self.problem(
                &path,
                format!(
                    "{} bytes, but the descriptor says {}",
                    bytes.len(),
                    descriptor.size
                ),
            );
        }
        let manifest = match Manifest::parse(&bytes, Some(&descriptor.media_type)) {
            Ok(manifest) => manifest,
            Err(e) => {
                self.problem(&path, e.to_string());
                return;
            }
        };
        for reference in manifest.references() {
            // Non-distributable layers live elsewhere (their `urls`).
            if reference.extra.contains_key("urls") {
                continue;
            }
            let child = blob_path(dir, &reference.digest);
            match fs::metadata(&child) {
                Ok(meta) if meta.len() == reference.size => {}
                Ok(meta) => self.problem(
                    &child,
                    format!(
                        "{} bytes, but manifest {} says {}",
                        meta.len(),
                        descriptor.digest,
                        reference.size
                    ),
                ),
                Err(_) => self.problem(
                    &child,
                    format!(
                        "blob {} of manifest {} is missing",
                        reference.digest, descriptor.digest
                    ),
                ),
            }
            if manifest.is_index() && depth < 8 {
                self.manifest(dir, reference, depth + 1);
            }
        }
    }
}

fn hash(path: &Path, algorithm: Algorithm) -> std::io::Result<Digest> {
    let mut file = fs::File::open(path)?;
    let mut writer = crate::digest::HashingWriter::new(std::io::sink(), algorithm);
    std::io::copy(&mut file, &mut writer)?;
    Ok(writer.into_parts().1.finish())
}
