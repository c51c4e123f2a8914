//! Garbage collection of a filesystem storage root: unreferenced blobs,
//! (optionally) untagged manifests, and stale upload sessions, removed while
//! the registry keeps serving.
//!
//! # What stays
//!
//! - Every manifest that is tagged, and by default every untagged one too:
//!   the pipeline pins images by digest, so an untagged manifest is not
//!   garbage unless the operator says so (`delete_untagged`).
//! - Everything a kept manifest reaches: an index's manifests, an image's
//!   config and layers, and every referrer (signatures, SBOMs, attestations)
//!   whose `subject` is kept, transitively.
//! - Anything younger than the grace period: a blob is judged by the later
//!   of its modification and status-change times, and linking a blob into a
//!   repository (an upload finishing, a mount) changes the latter, so a blob
//!   pushed for a manifest that has not arrived yet is safe for the grace.
//!
//! # Why a push during a run is never lost
//!
//! A repository is collected under its write lock, the lock a manifest PUT
//! takes to record the manifest; the PUT checks under that lock that every
//! blob it references is still linked, so a manifest is acknowledged only
//! with all of its blobs present, and from then on they are referenced. The
//! shared store is swept under a store lock that uploads and mounts hold
//! while they link a stored blob into a repository, so a stored blob never
//! vanishes between the two steps.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    blob_path, fsync_dir, index_bytes, lock, read_lock, walk_repositories, write_lock, FsStorage,
    Inner, Repo,
};
use crate::digest::{Algorithm, Digest};
use crate::manifest::Manifest;
use crate::storage::{Result, StorageError};

/// What a collection run may remove.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreferenced blobs (and untagged manifests) younger than this stay.
    pub grace: Duration,
    /// Upload sessions idle longer than this are cancelled (default 24 h).
    pub upload_grace: Duration,
    /// Also remove manifests no tag reaches (and no kept manifest refers to).
    pub delete_untagged: bool,
    /// Report what would go, remove nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            upload_grace: Duration::from_secs(24 * 3600),
            delete_untagged: false,
            dry_run: false,
        }
    }
}

/// What a run removed (or, in a dry run, would remove).
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Repositories looked at.
    pub repositories: usize,
    /// `repository@digest` of each manifest removed.
    pub manifests: Vec<String>,
    /// Blob links removed from repositories.
    pub blobs: usize,
    /// Blobs removed from the shared store (no repository links them).
    pub stored_blobs: usize,
    /// Bytes the store gave back.
    pub bytes: u64,
    /// Upload sessions cancelled (and leftover upload files removed).
    pub uploads: usize,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// What one manifest links to: every blob it names, the manifests among
/// them (for an index), and its subject.
type Links = (Vec<Digest>, Vec<Digest>, Option<Digest>);

/// The age of a file by the later of its mtime and ctime.
fn age(meta: &fs::Metadata, now: SystemTime) -> Duration {
    let newest = meta.mtime().max(meta.ctime()).max(0) as u64;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Duration::from_secs(now.saturating_sub(newest))
}

impl FsStorage {
    /// Collects garbage as [`GcOptions`] says, while the storage stays in
    /// use (see the module docs for why no push is lost).
    pub async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        let options_grace = options.upload_grace;
        let inner = self.inner.clone();
        let report = tokio::task::spawn_blocking(move || inner.gc(&options))
            .await
            .map_err(|e| StorageError::io(self.root(), io::Error::other(e)))??;
        let stale = self
            .stale_uploads(&self.inner, options_grace, report.dry_run)
            .await;
        Ok(GcReport {
            uploads: report.uploads + stale,
            ..report
        })
    }

    /// The bytes in the shared blob store (what the root holds, counting
    /// each deduplicated blob once).
    pub async fn stored_bytes(&self) -> Result<u64> {
        let private = self.inner.private.clone();
        tokio::task::spawn_blocking(move || {
            let mut total = 0;
            for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
                let dir = private.join("blobs").join(algorithm.as_str());
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io(dir, e)),
                };
                for entry in entries.flatten() {
                    total += entry.metadata().map_or(0, |m| m.len());
                }
            }
            Ok(total)
        })
        .await
        .map_err(|e| StorageError::io(self.root(), io::Error::other(e)))?
    }

    /// Cancels sessions idle past the upload grace; returns how many.
    async fn stale_uploads(&self, inner: &Inner, grace: Duration, dry_run: bool) -> usize {
        let stale: Vec<(String, Arc<super::Upload>)> = lock(&inner.uploads)
            .iter()
            .filter(|(_, u)| u.idle() >= grace)
            .map(|(id, u)| (id.clone(), u.clone()))
            .collect();
        let mut count = 0;
        for (id, upload) in stale {
            // A session busy with a request is not stale.
            let Ok(mut slot) = upload.slot.try_lock() else {
                continue;
            };
            count += 1;
            if dry_run {
                continue;
            }
            lock(&inner.uploads).remove(&id);
            if slot.take().is_some() {
                let _ = fs::remove_file(&upload.path);
            }
        }
        count
    }
}

impl Inner {
    fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let now = SystemTime::now();
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        let mut names = Vec::new();
        walk_repositories(&self.root, "", &mut names)?;
        for name in names {
            let Some(repo) = self.repo(&name)? else {
                continue;
            };
            report.repositories += 1;
            self.gc_repository(&name, &repo, options, now, &mut report)?;
        }
        self.gc_store(options, now, &mut report)?;
        self.gc_upload_files(options, now, &mut report)?;
        Ok(report)
    }

    fn gc_repository(
        &self,
        name: &str,
        repo: &Repo,
        options: &GcOptions,
        now: SystemTime,
        report: &mut GcReport,
    ) -> Result<()> {
        let _guard = lock(&repo.write);
        let state = read_lock(&repo.state).clone();
        // Parse every manifest once: what it references and its subject.
        let mut parsed: HashMap<Digest, Links> = HashMap::new();
        for (digest, info) in &state.manifests {
            let bytes = match &info.bytes {
                Some(bytes) => bytes.to_vec(),
                None => match fs::read(blob_path(&repo.dir, digest)) {
                    Ok(bytes) => bytes,
                    // A dangling entry: scrub's business, not GC's.
                    Err(_) => continue,
                },
            };
            let Ok(manifest) = Manifest::parse(&bytes, Some(&info.media_type)) else {
                continue;
            };
            let children: Vec<Digest> = manifest
                .references()
                .iter()
                .filter(|_| manifest.is_index())
                .map(|d| d.digest.clone())
                .collect();
            let blobs: Vec<Digest> = manifest
                .references()
                .iter()
                .map(|d| d.digest.clone())
                .collect();
            let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
            parsed.insert(digest.clone(), (blobs, children, subject));
        }
        let young = |digest: &Digest| {
            fs::metadata(blob_path(&repo.dir, digest))
                .map(|meta| age(&meta, now) < options.grace)
                .unwrap_or(false)
        };
        // Roots: tagged manifests, or all of them; young ones always.
        let mut live: HashSet<Digest> = if options.delete_untagged {
            let mut roots: HashSet<Digest> = state.tags.values().cloned().collect();
            roots.extend(state.manifests.keys().filter(|d| young(d)).cloned());
            roots
        } else {
            state.manifests.keys().cloned().collect()
        };
        // Close over index children and referrers of live manifests.
        loop {
            let mut grew = false;
            for (digest, (_, children, subject)) in &parsed {
                if live.contains(digest) {
                    for child in children {
                        grew |= live.insert(child.clone());
                    }
                } else if subject.as_ref().is_some_and(|s| live.contains(s)) {
                    grew |= live.insert(digest.clone());
                }
            }
            if !grew {
                break;
            }
        }
        let doomed: Vec<Digest> = state
            .manifests
            .keys()
            .filter(|d| !live.contains(d))
            .cloned()
            .collect();
        let mut referenced: HashSet<Digest> = live.clone();
        for digest in &live {
            if let Some((blobs, _, _)) = parsed.get(digest) {
                referenced.extend(blobs.iter().cloned());
            }
        }
        if !doomed.is_empty() {
            report
                .manifests
                .extend(doomed.iter().map(|d| format!("{name}@{d}")));
            if !options.dry_run {
                let mut next = state.as_ref().clone();
                for digest in &doomed {
                    next.manifests.remove(digest);
                }
                next.tags.retain(|_, d| !doomed.contains(d));
                self.write_atomic(&repo.dir.join("index.json"), &index_bytes(&next))?;
                *write_lock(&repo.state) = Arc::new(next);
            }
        }
        // Unreferenced, old blob links of this repository.
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = repo.dir.join("blobs").join(algorithm.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io(dir, e)),
            };
            let mut removed = false;
            for entry in entries {
                let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
                let file_name = entry.file_name();
                let Ok(digest) = Digest::new(algorithm, &file_name.to_string_lossy()) else {
                    continue;
                };
                if referenced.contains(&digest) {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                let doomed_manifest = doomed.contains(&digest);
                if !doomed_manifest && age(&meta, now) < options.grace {
                    continue;
                }
                report.blobs += 1;
                if !options.dry_run {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed = true,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StorageError::io(entry.path(), e)),
                    }
                }
            }
            if removed {
                fsync_dir(&dir)?;
            }
        }
        Ok(())
    }

    /// Store blobs no repository links any more (link count 1).
    fn gc_store(&self, options: &GcOptions, now: SystemTime, report: &mut GcReport) -> Result<()> {
        // Uploads and mounts hold the read side while they link a stored blob.
        let _guard = write_lock(&self.store_lock);
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.private.join("blobs").join(algorithm.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io(dir, e)),
            };
            let mut removed = false;
            for entry in entries {
                let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
                let Ok(meta) = entry.metadata() else { continue };
                // With dedupe off repositories hold copies, and the store
                // copy is only a staging area: the same rule applies.
                if meta.nlink() > 1 || age(&meta, now) < options.grace {
                    continue;
                }
                report.stored_blobs += 1;
                report.bytes += meta.len();
                if !options.dry_run {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed = true,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StorageError::io(entry.path(), e)),
                    }
                }
            }
            if removed {
                fsync_dir(&dir)?;
            }
        }
        Ok(())
    }

    /// Upload files no session owns (left by a crash) past the upload grace.
    fn gc_upload_files(
        &self,
        options: &GcOptions,
        now: SystemTime,
        report: &mut GcReport,
    ) -> Result<()> {
        let dir = self.private.join("uploads");
        let owned: HashSet<PathBuf> = lock(&self.uploads)
            .values()
            .map(|u| u.path.clone())
            .collect();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
            let path = entry.path();
            if owned.contains(&path) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if age(&meta, now) < options.upload_grace {
                continue;
            }
            report.uploads += 1;
            if !options.dry_run {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }
}
