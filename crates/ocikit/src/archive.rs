//! `oci-archive:` files: a tar of an OCI image layout, as skopeo reads and
//! writes them.
//!
//! Reading extracts the tar into a private temporary layout (only plain files
//! and directories with relative paths are accepted, so a hostile archive
//! cannot write outside it) and reads that layout, verified like any other.
//! Writing fills a temporary layout next to the destination, then packs it
//! into a temporary tar that is fsynced and renamed over the destination: an
//! archive is replaced whole or not at all, and an interrupted write leaves the
//! old file (if any) untouched. Entries are written in a fixed order with
//! zeroed owners and times, so the same layout always packs to the same bytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::layout::{Layout, LayoutError};

/// Why an archive could not be read or written; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The archive or the temporary directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The tar holds an entry ocikit refuses to extract.
    #[error("{path}: refusing archive entry {entry:?} ({reason}); an oci-archive holds only the files of an image layout")]
    UnsafeEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's path in the tar.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// The extracted or packed layout is invalid.
    #[error("{path}: {source}")]
    Layout {
        /// The archive.
        path: PathBuf,
        /// The layout error.
        #[source]
        source: Box<LayoutError>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An archive extracted into a temporary layout, removed when dropped.
pub struct ExtractedArchive {
    _dir: tempfile::TempDir,
    layout: Layout,
}

impl ExtractedArchive {
    /// The layout inside the archive.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// Extracts `path` into a temporary directory and opens the layout in it.
pub fn extract(path: &Path) -> Result<ExtractedArchive, ArchiveError> {
    let file = File::open(path).map_err(io_err(path))?;
    let dir = tempfile::Builder::new()
        .prefix("ocikit-archive-")
        .tempdir()
        .map_err(io_err(path))?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(256 * 1024, file));
    for entry in tar.entries().map_err(io_err(path))? {
        let mut entry = entry.map_err(io_err(path))?;
        let name = entry.path().map_err(io_err(path))?.into_owned();
        let shown = name.display().to_string();
        let unsafe_entry = |reason| ArchiveError::UnsafeEntry {
            path: path.to_path_buf(),
            entry: shown.clone(),
            reason,
        };
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(unsafe_entry("not a plain file or directory"));
        }
        let normal = name.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !normal {
            return Err(unsafe_entry("absolute or parent path"));
        }
        if !entry.unpack_in(dir.path()).map_err(io_err(path))? {
            return Err(unsafe_entry("outside the archive"));
        }
    }
    let layout = Layout::open(dir.path()).map_err(|source| ArchiveError::Layout {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(ExtractedArchive { _dir: dir, layout })
}

/// An archive being written: fill [`ArchiveBuilder::layout`], then
/// [`ArchiveBuilder::finish`]. Dropping it unfinished leaves the destination
/// as it was.
pub struct ArchiveBuilder {
    dir: tempfile::TempDir,
    layout: Layout,
    dest: PathBuf,
}

impl ArchiveBuilder {
    /// Starts an archive that will replace `dest`; the temporary layout lives
    /// in the same directory so that packing never crosses file systems.
    pub fn new(dest: &Path) -> Result<ArchiveBuilder, ArchiveError> {
        let parent = parent_dir(dest);
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let dir = tempfile::Builder::new()
            .prefix(".ocikit-archive-")
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        let layout = Layout::open_or_create(dir.path()).map_err(|source| ArchiveError::Layout {
            path: dest.to_path_buf(),
            source: Box::new(source),
        })?;
        Ok(ArchiveBuilder {
            dir,
            layout,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary layout to copy the image into.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Packs the layout into a temporary tar, fsyncs it and renames it over
    /// the destination.
    pub fn finish(self) -> Result<(), ArchiveError> {
        let parent = parent_dir(&self.dest);
        let temp = tempfile::Builder::new()
            .prefix(".ocikit-archive-")
            .suffix(".tar")
            .tempfile_in(&parent)
            .map_err(io_err(&parent))?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(256 * 1024, temp));
        let root = self.dir.path();
        for name in ["oci-layout", "index.json"] {
            append_file(&mut builder, &root.join(name), name).map_err(io_err(&self.dest))?;
        }
        append_dir(&mut builder, "blobs").map_err(io_err(&self.dest))?;
        let mut algorithms = sorted_entries(&root.join("blobs")).map_err(io_err(&self.dest))?;
        algorithms.retain(|p| p.is_dir());
        for algorithm_dir in algorithms {
            let algorithm = file_name(&algorithm_dir);
            append_dir(&mut builder, &format!("blobs/{algorithm}")).map_err(io_err(&self.dest))?;
            for blob in sorted_entries(&algorithm_dir).map_err(io_err(&self.dest))? {
                let name = format!("blobs/{algorithm}/{}", file_name(&blob));
                append_file(&mut builder, &blob, &name).map_err(io_err(&self.dest))?;
            }
        }
        let temp = builder
            .into_inner()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(io_err(&self.dest))?;
        temp.as_file().sync_all().map_err(io_err(&self.dest))?;
        temp.persist(&self.dest)
            .map_err(|e| io_err(&self.dest)(e.error))?;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&parent))
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    builder.append_data(&mut h, format!("{name}/"), io::empty())
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, path: &Path, name: &str) -> io::Result<()> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    builder.append_data(&mut h, name, io::BufReader::with_capacity(256 * 1024, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Descriptor, OCI_MANIFEST};

    #[test]
    fn round_trips_byte_for_byte_and_deterministically() {
        let dir = tempfile::tempdir().expect("tmp");
        let dest = dir.path().join("a.tar");
        let build = || {
            let b = ArchiveBuilder::new(&dest).expect("builder");
            let config = b.layout().write_blob(b"{}", None).expect("config");
            let m = format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{config}","size":2}},"layers":[]}}"#
            );
            let d = b.layout().write_blob(m.as_bytes(), None).expect("manifest");
            b.layout()
                .set_manifest(
                    &Descriptor::new(OCI_MANIFEST, d.clone(), m.len() as u64),
                    Some("v1"),
                )
                .expect("tag");
            b.finish().expect("finish");
            (d, fs::read(&dest).expect("read"))
        };
        let (digest, first) = build();
        let (_, second) = build();
        assert_eq!(first, second, "packing is deterministic");
        let extracted = extract(&dest).expect("extract");
        let found = extracted.layout().resolve(Some("v1"), None).expect("tag");
        assert_eq!(found.digest, digest);
        assert_eq!(extracted.layout().check().expect("valid"), 2);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("a.tar")]);
    }

    #[test]
    fn refuses_escaping_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("evil.tar");
        let mut b = tar::Builder::new(File::create(&path).expect("create"));
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name("/etc/passwd").expect("link");
        b.append_data(&mut h, "index.json", io::empty())
            .expect("append");
        b.into_inner().expect("finish");
        let err = extract(&path).err().expect("refused").to_string();
        assert!(err.contains("not a plain file"), "{err}");
        let err = extract(&dir.path().join("missing.tar"))
            .err()
            .expect("missing")
            .to_string();
        assert!(err.contains("missing.tar"), "{err}");
    }
}
