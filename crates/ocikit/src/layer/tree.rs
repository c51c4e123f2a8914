//! A directory tree → a reproducible tar stream: the layer format oci-build
//! writes, and the diff of two trees (a `run` step's changes) as one layer.
//!
//! Reproducible by construction, so two builds of the same inputs give the
//! same `diff_id` whatever the machine, work directory, umask or the order
//! in which files were created:
//! - entries sorted by name (bytes), each directory before its contents;
//! - mtimes clamped to `SOURCE_DATE_EPOCH` (0 when unset), no atime/ctime;
//! - uid/gid kept, uname/gname empty;
//! - USTAR headers, with a PAX header only for what USTAR cannot hold (long
//!   names and link targets, xattrs), its records sorted by key;
//! - hard links written once, later names as links to the first.
//!
//! A diff is decided by content, never by mtime (mtimes are clamped, so an
//! mtime comparison would miss edits): a file is in the layer when its type,
//! mode, owner, xattrs, link target, device or bytes differ from the lower
//! tree's; a name that is gone gets a `.wh.` whiteout; a changed entry
//! brings its parent directories along.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The prefix of a whiteout entry (OCI image spec, layer changesets).
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// Extended attributes that describe the host rather than the file (SELinux
/// labels are assigned by the host's policy), never written to a layer.
const HOST_XATTRS: &[&str] = &["security.selinux"];

/// Why a tree could not be written as a layer.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Reading the tree or writing the stream failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or the tree, for a write error).
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `SOURCE_DATE_EPOCH` is set but is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970 (unset it, or set it to e.g. $(git log -1 --format=%ct))")]
    BadEpoch {
        /// The value found.
        value: String,
    },
}

/// `SOURCE_DATE_EPOCH` from the environment: the time every timestamp of a
/// build is clamped to; 0 when unset, so digests are stable out of the box.
pub fn source_date_epoch() -> Result<u64, TreeError> {
    parse_epoch(std::env::var("SOURCE_DATE_EPOCH").ok())
}

/// Parses a `SOURCE_DATE_EPOCH` value (`None` or empty: 0).
pub fn parse_epoch(value: Option<String>) -> Result<u64, TreeError> {
    match value {
        None => Ok(0),
        Some(value) if value.trim().is_empty() => Ok(0),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| TreeError::BadEpoch { value }),
    }
}

/// What the written layer held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Entries written (whiteouts included).
    pub entries: u64,
    /// Whiteouts written.
    pub whiteouts: u64,
}

/// Writes every entry under `root` (not `root` itself) to `out` as a tar
/// stream, with timestamps clamped to `epoch`.
pub fn write_tree<W: Write>(root: &Path, out: W, epoch: u64) -> Result<(W, TreeStats), TreeError> {
    write_diff(None, root, out, epoch)
}

/// Writes what changed from `lower` to `upper` (both directory trees) to
/// `out` as one layer: new and changed entries, their parent directories,
/// and whiteouts for names that are gone. Without `lower`, the whole of
/// `upper`.
pub fn write_diff<W: Write>(
    lower: Option<&Path>,
    upper: &Path,
    out: W,
    epoch: u64,
) -> Result<(W, TreeStats), TreeError> {
    let mut changes = Vec::new();
    collect(lower, upper, b"", &mut changes)?;
    let mut writer = TarWriter {
        out,
        buffer: Vec::new(),
        epoch,
        links: HashMap::new(),
        stats: TreeStats::default(),
        root: upper,
    };
    for change in changes.into_iter().flatten() {
        writer.entry(change)?;
    }
    let TarWriter { mut out, stats, .. } = writer;
    out.write_all(&[0u8; 1024])
        .map_err(|source| io_err(upper, source))?;
    Ok((out, stats))
}

fn io_err(path: &Path, source: io::Error) -> TreeError {
    TreeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One entry to write.
enum Change {
    /// The entry at `path` under the name `name`.
    Entry {
        name: Vec<u8>,
        path: PathBuf,
        meta: Metadata,
    },
    /// A whiteout named `name` (its full `.wh.` name).
    Whiteout { name: Vec<u8> },
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>, TreeError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        names.push(entry.map_err(|e| io_err(dir, e))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn join_name(prefix: &[u8], name: &OsStr) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

/// Collects the changes under directory `upper` (named `prefix`, empty or
/// ending in `/`), with `lower` the same directory in the lower tree.
/// Returns whether anything under it changed.
fn collect(
    lower: Option<&Path>,
    upper: &Path,
    prefix: &[u8],
    changes: &mut Vec<Option<Change>>,
) -> Result<bool, TreeError> {
    let mut changed = false;
    let upper_names = sorted_names(upper)?;
    let lower_names = match lower {
        Some(dir) => sorted_names(dir)?,
        None => Vec::new(),
    };
    // Names in either tree, sorted, so a whiteout sits where its name would.
    let mut all: Vec<(&OsString, bool)> = upper_names.iter().map(|n| (n, true)).collect();
    for name in &lower_names {
        if upper_names
            .binary_search_by(|u| u.as_bytes().cmp(name.as_bytes()))
            .is_err()
        {
            all.push((name, false));
        }
    }
    all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, in_upper) in all {
        if !in_upper {
            let mut wh = prefix.to_vec();
            wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
            wh.extend_from_slice(name.as_bytes());
            changes.push(Some(Change::Whiteout { name: wh }));
            changed = true;
            continue;
        }
        let path = upper.join(name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        if meta.file_type().is_socket() {
            continue;
        }
        let lower_path = lower.map(|l| l.join(name));
        let lower_meta = match &lower_path {
            Some(p) => match std::fs::symlink_metadata(p) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(p, e)),
            },
            None => None,
        };
        if meta.is_dir() {
            let mut dir_name = join_name(prefix, name);
            dir_name.push(b'/');
            let slot = changes.len();
            changes.push(None);
            let same_dir = match (&lower_meta, &lower_path) {
                (Some(lm), Some(lp)) if lm.is_dir() => same_attributes(lp, lm, &path, &meta)?,
                _ => false,
            };
            let child_lower = match (&lower_meta, &lower_path) {
                (Some(lm), Some(lp)) if lm.is_dir() => Some(lp.as_path()),
                _ => None,
            };
            let children = collect(child_lower, &path, &dir_name, changes)?;
            if !same_dir || children {
                changes[slot] = Some(Change::Entry {
                    name: dir_name,
                    path,
                    meta,
                });
                changed = true;
            }
        } else {
            let same = match (&lower_meta, &lower_path) {
                (Some(lm), Some(lp)) => same_entry(lp, lm, &path, &meta)?,
                _ => false,
            };
            if !same {
                changes.push(Some(Change::Entry {
                    name: join_name(prefix, name),
                    path,
                    meta,
                }));
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, TreeError> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(out),
        Err(e) => return Err(io_err(path, e)),
    };
    for name in names {
        let Some(key) = name.to_str() else { continue };
        if HOST_XATTRS.contains(&key) {
            continue;
        }
        if let Some(value) = xattr::get(path, &name).map_err(|e| io_err(path, e))? {
            out.push((key.to_owned(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn same_attributes(a: &Path, am: &Metadata, b: &Path, bm: &Metadata) -> Result<bool, TreeError> {
    Ok(am.mode() == bm.mode()
        && am.uid() == bm.uid()
        && am.gid() == bm.gid()
        && xattrs(a)? == xattrs(b)?)
}

fn same_entry(a: &Path, am: &Metadata, b: &Path, bm: &Metadata) -> Result<bool, TreeError> {
    if !same_attributes(a, am, b, bm)? {
        return Ok(false);
    }
    let (at, bt) = (am.file_type(), bm.file_type());
    if at.is_file() && bt.is_file() {
        return Ok(am.len() == bm.len() && same_contents(a, b)?);
    }
    if at.is_symlink() && bt.is_symlink() {
        let ta = std::fs::read_link(a).map_err(|e| io_err(a, e))?;
        let tb = std::fs::read_link(b).map_err(|e| io_err(b, e))?;
        return Ok(ta == tb);
    }
    if (at.is_char_device() && bt.is_char_device())
        || (at.is_block_device() && bt.is_block_device())
    {
        return Ok(am.rdev() == bm.rdev());
    }
    Ok(at.is_fifo() && bt.is_fifo())
}

fn same_contents(a: &Path, b: &Path) -> Result<bool, TreeError> {
    let mut fa = BufReader::with_capacity(128 * 1024, File::open(a).map_err(|e| io_err(a, e))?);
    let mut fb = BufReader::with_capacity(128 * 1024, File::open(b).map_err(|e| io_err(b, e))?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(|e| io_err(a, e))?;
        let m = read_full(&mut fb, &mut bb).map_err(|e| io_err(b, e))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The read size when copying file contents into the stream.
const COPY_BUFFER: usize = 256 * 1024;

struct TarWriter<'a, W: Write> {
    out: W,
    /// File contents on their way to `out` ([`COPY_BUFFER`] bytes once used).
    buffer: Vec<u8>,
    epoch: u64,
    /// (dev, ino) of multiply-linked files already written → their name.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: TreeStats,
    root: &'a Path,
}

/// A PAX record: `<len> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

impl<W: Write> TarWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), TreeError> {
        self.out
            .write_all(bytes)
            .map_err(|source| io_err(self.root, source))
    }

    fn pad(&mut self, len: u64) -> Result<(), TreeError> {
        let rest = (512 - (len % 512) as usize) % 512;
        self.write(&[0u8; 512][..rest])
    }

    fn entry(&mut self, change: Change) -> Result<(), TreeError> {
        self.stats.entries += 1;
        let (name, path, meta) = match change {
            Change::Whiteout { name } => {
                self.stats.whiteouts += 1;
                let mut header = tar::Header::new_ustar();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(0);
                header.set_mtime(self.epoch);
                return self.header(header, &name, None, &[]);
            }
            Change::Entry { name, path, meta } => (name, path, meta),
        };
        let ft = meta.file_type();
        let mut header = tar::Header::new_ustar();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0).min(self.epoch);
        header.set_mtime(mtime);
        header.set_size(0);
        let attrs = xattrs(&path)?;
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            return self.header(header, &name, None, &attrs);
        }
        if ft.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            let target = std::fs::read_link(&path).map_err(|e| io_err(&path, e))?;
            return self.header(header, &name, Some(target.as_os_str().as_bytes()), &attrs);
        }
        if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            header.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            if !ft.is_fifo() {
                let rdev = meta.rdev();
                let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
                let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
                header
                    .set_device_major(major as u32)
                    .map_err(|e| io_err(&path, e))?;
                header
                    .set_device_minor(minor as u32)
                    .map_err(|e| io_err(&path, e))?;
            }
            return self.header(header, &name, None, &attrs);
        }
        // A regular file: a hard link to an earlier name of the same inode.
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                header.set_entry_type(tar::EntryType::Link);
                return self.header(header, &name, Some(&first), &attrs);
            }
            self.links.insert(key, name.clone());
        }
        header.set_entry_type(tar::EntryType::Regular);
        let size = meta.len();
        header.set_size(size);
        self.header(header, &name, None, &attrs)?;
        let file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let copied = self.copy(file.take(size), &path)?;
        if copied != size {
            return Err(io_err(
                &path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file shrank while being read ({copied} of {size} bytes); is something writing to the tree?"),
                ),
            ));
        }
        self.pad(size)
    }

    /// Copies a file's bytes into the stream through one reused buffer, big
    /// enough that the compressor and the hasher see large slices (std's
    /// `io::copy` would hand them 8 KiB at a time).
    fn copy(&mut self, mut from: impl Read, path: &Path) -> Result<u64, TreeError> {
        if self.buffer.is_empty() {
            self.buffer = vec![0; COPY_BUFFER];
        }
        let mut copied = 0;
        loop {
            let n = match from.read(&mut self.buffer) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(path, e)),
            };
            self.out
                .write_all(&self.buffer[..n])
                .map_err(|source| io_err(self.root, source))?;
            copied += n as u64;
        }
    }

    /// Writes `header` for `name` (and `link`), preceded by a PAX header when
    /// USTAR cannot hold them or there are xattrs.
    fn header(
        &mut self,
        mut header: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        attrs: &[(String, Vec<u8>)],
    ) -> Result<(), TreeError> {
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        let fits_name = set_ustar_name(&mut header, name);
        if !fits_name {
            records.push(("path".into(), name.to_vec()));
        }
        if let Some(link) = link {
            if link.len() > 100 {
                records.push(("linkpath".into(), link.to_vec()));
                header.as_old_mut().linkname.copy_from_slice(&link[..100]);
            } else {
                let field = &mut header.as_old_mut().linkname;
                field.fill(0);
                field[..link.len()].copy_from_slice(link);
            }
        }
        for (key, value) in attrs {
            records.push((format!("SCHILY.xattr.{key}"), value.clone()));
        }
        records.sort();
        if !records.is_empty() {
            let mut body = Vec::new();
            for (key, value) in &records {
                body.extend(pax_record(key, value));
            }
            let mut pax = tar::Header::new_ustar();
            pax.set_entry_type(tar::EntryType::XHeader);
            let mut pax_name = b"PaxHeaders/".to_vec();
            let tail = &name[name.len().saturating_sub(80)..];
            pax_name.extend_from_slice(tail);
            set_ustar_name(&mut pax, &pax_name[..pax_name.len().min(100)]);
            pax.set_mode(0o644);
            pax.set_size(body.len() as u64);
            pax.set_mtime(header.mtime().unwrap_or(0));
            pax.set_cksum();
            self.write(pax.as_bytes())?;
            self.write(&body)?;
            self.pad(body.len() as u64)?;
        }
        header.set_cksum();
        self.write(header.as_bytes())
    }
}

/// Puts `name` in a USTAR header's name (and prefix) fields; returns false
/// (leaving a truncated name) when it does not fit, so a PAX `path` is needed.
fn set_ustar_name(header: &mut tar::Header, name: &[u8]) -> bool {
    let Some(ustar) = header.as_ustar_mut() else {
        return false;
    };
    ustar.name.fill(0);
    ustar.prefix.fill(0);
    if name.len() <= 100 {
        ustar.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // Split at a '/' so that prefix ≤ 155 and name ≤ 100 bytes.
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    for (at, _) in trimmed.iter().enumerate().filter(|(_, &b)| b == b'/') {
        let (prefix, rest) = (&name[..at], &name[at + 1..]);
        if prefix.len() <= 155 && rest.len() <= 100 && !rest.is_empty() {
            ustar.prefix[..prefix.len()].copy_from_slice(prefix);
            ustar.name[..rest.len()].copy_from_slice(rest);
            return true;
        }
    }
    ustar.name.copy_from_slice(&name[..100]);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(root: &Path, rel: &str, data: &[u8], mode: u32) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn set_mtime(path: &Path, secs: i64) {
        filetime::set_symlink_file_times(
            path,
            filetime::FileTime::from_unix_time(secs, 0),
            filetime::FileTime::from_unix_time(secs, 0),
        )
        .expect("mtime");
    }

    /// (path, type, mode, mtime, uid, size, link, contents) of each entry.
    fn entries(tar_bytes: &[u8]) -> Vec<(String, char, u32, u64, String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let header = entry.header().clone();
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            assert_eq!(header.groupname_bytes(), Some(&b""[..]));
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("data");
            out.push((
                path,
                header.entry_type().as_byte() as char,
                header.mode().expect("mode"),
                header.mtime().expect("mtime"),
                link,
                data,
            ));
        }
        out
    }

    fn tar_of(lower: Option<&Path>, upper: &Path, epoch: u64) -> Vec<u8> {
        write_diff(lower, upper, Vec::new(), epoch).expect("tar").0
    }

    #[test]
    fn same_tree_same_bytes_whatever_the_creation_order_and_mtimes() {
        let a = tempfile::tempdir().expect("a");
        let b = tempfile::tempdir().expect("b");
        let names = ["z", "a/b/c.txt", "a/b/a.txt", "m.bin", "a/Z"];
        for (i, name) in names.iter().enumerate() {
            file(a.path(), name, name.as_bytes(), 0o644);
            set_mtime(&a.path().join(name), 1_000 + i as i64);
        }
        for (i, name) in names.iter().rev().enumerate() {
            file(b.path(), name, name.as_bytes(), 0o644);
            set_mtime(&b.path().join(name), 5_000_000_000 + i as i64);
        }
        std::os::unix::fs::symlink("a/b/c.txt", a.path().join("link")).expect("ln");
        std::os::unix::fs::symlink("a/b/c.txt", b.path().join("link")).expect("ln");
        for dir in ["a", "a/b"] {
            set_mtime(&a.path().join(dir), 77);
        }
        assert!(tar_of(None, a.path(), 0) == tar_of(None, b.path(), 0));
        let got = entries(&tar_of(None, a.path(), 0));
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "a/",
                "a/Z",
                "a/b/",
                "a/b/a.txt",
                "a/b/c.txt",
                "link",
                "m.bin",
                "z"
            ]
        );
        assert!(got.iter().all(|e| e.3 == 0), "mtimes clamped to 0");
        assert_eq!(got[5].1, '2');
        assert_eq!(got[5].4, "a/b/c.txt");
        // With an epoch, older mtimes stay and newer ones are clamped.
        let clamped = entries(&tar_of(None, a.path(), 1_002));
        let z = clamped.iter().find(|e| e.0 == "z").expect("z");
        assert_eq!(z.3, 1_000);
        let m = clamped.iter().find(|e| e.0 == "m.bin").expect("m");
        assert_eq!(m.3, 1_002);
    }

    #[test]
    fn modes_and_contents_are_kept() {
        let dir = tempfile::tempdir().expect("dir");
        file(dir.path(), "bin/tool", b"#!/bin/sh\n", 0o4755);
        file(dir.path(), "etc/secret", b"x", 0o600);
        let got = entries(&tar_of(None, dir.path(), 0));
        let tool = got.iter().find(|e| e.0 == "bin/tool").expect("tool");
        assert_eq!(tool.2, 0o4755);
        assert_eq!(tool.5, b"#!/bin/sh\n");
        let secret = got.iter().find(|e| e.0 == "etc/secret").expect("secret");
        assert_eq!(secret.2, 0o600);
    }

    #[test]
    fn long_names_links_and_hard_links() {
        let dir = tempfile::tempdir().expect("dir");
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
        file(dir.path(), &long, b"long", 0o644);
        let target = "t".repeat(150);
        std::os::unix::fs::symlink(&target, dir.path().join("sym")).expect("ln -s");
        file(dir.path(), "h1", b"same inode", 0o644);
        std::fs::hard_link(dir.path().join("h1"), dir.path().join("h2")).expect("ln");
        let got = entries(&tar_of(None, dir.path(), 0));
        assert!(got.iter().any(|e| e.0 == long && e.5 == b"long"), "{got:?}");
        let sym = got.iter().find(|e| e.0 == "sym").expect("sym");
        assert_eq!(sym.4, target);
        let h2 = got.iter().find(|e| e.0 == "h2").expect("h2");
        assert_eq!((h2.1, h2.4.as_str()), ('1', "h1"));
    }

    #[test]
    fn diff_by_content_with_whiteouts() {
        let lower = tempfile::tempdir().expect("lower");
        let upper = tempfile::tempdir().expect("upper");
        for root in [lower.path(), upper.path()] {
            file(root, "keep/same.txt", b"same", 0o644);
            file(root, "etc/conf", b"version=1", 0o644);
            file(root, "gone/file", b"x", 0o644);
            file(root, "old.txt", b"x", 0o644);
            file(root, "chmod.sh", b"x", 0o644);
        }
        // Same size, same (clamped) mtime, different bytes: still a change.
        file(upper.path(), "etc/conf", b"version=2", 0o644);
        set_mtime(&upper.path().join("etc/conf"), 0);
        set_mtime(&lower.path().join("etc/conf"), 0);
        std::fs::set_permissions(
            upper.path().join("chmod.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::remove_dir_all(upper.path().join("gone")).expect("rm");
        std::fs::remove_file(upper.path().join("old.txt")).expect("rm");
        file(upper.path(), "new/deep/file", b"new", 0o644);
        // Touching a file without changing it is not a change.
        set_mtime(&upper.path().join("keep/same.txt"), 999);
        let (tar, stats) =
            write_diff(Some(lower.path()), upper.path(), Vec::new(), 0).expect("diff");
        let names: Vec<String> = entries(&tar).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "chmod.sh",
                "etc/",
                "etc/conf",
                ".wh.gone",
                "new/",
                "new/deep/",
                "new/deep/file",
                ".wh.old.txt"
            ]
        );
        assert_eq!(stats.whiteouts, 2);
        let (tar, stats) =
            write_diff(Some(lower.path()), lower.path(), Vec::new(), 0).expect("same");
        assert_eq!(stats.entries, 0);
        assert_eq!(tar.len(), 1024);
    }

    #[test]
    fn xattrs_are_sorted_pax_records_where_supported() {
        let dir = tempfile::tempdir().expect("dir");
        file(dir.path(), "f", b"x", 0o644);
        let path = dir.path().join("f");
        if xattr::set(&path, "user.b", b"2").is_err() {
            // tmpfs without user xattrs: nothing to write, nothing to check.
            assert!(xattrs(&path).expect("list").is_empty());
            return;
        }
        xattr::set(&path, "user.a", b"1").expect("xattr");
        let tar = tar_of(None, dir.path(), 0);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entry = archive
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        let pax: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .expect("pax")
            .expect("present")
            .map(|r| {
                let r = r.expect("record");
                (r.key().expect("key").to_owned(), r.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            pax,
            [
                ("SCHILY.xattr.user.a".to_owned(), b"1".to_vec()),
                ("SCHILY.xattr.user.b".to_owned(), b"2".to_vec())
            ]
        );
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value_len in [0, 1, 5, 6, 7, 90, 95, 96, 97, 990, 995] {
            let value = vec![b'v'; value_len];
            let record = pax_record("path", &value);
            let text = String::from_utf8(record.clone()).expect("utf8");
            let (len, _) = text.split_once(' ').expect("space");
            assert_eq!(
                len.parse::<usize>().expect("len"),
                record.len(),
                "{value_len}"
            );
        }
    }

    #[test]
    fn epoch_values() {
        let cases = [
            (None, Ok(0)),
            (Some(""), Ok(0)),
            (Some("1700000000"), Ok(1_700_000_000)),
            (Some(" 5 "), Ok(5)),
            (
                Some("12x"),
                Err("SOURCE_DATE_EPOCH=\"12x\" is not a number"),
            ),
            (Some("-1"), Err("is not a number")),
        ];
        for (value, want) in cases {
            match (parse_epoch(value.map(str::to_owned)), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{got}"),
                (got, want) => panic!("{value:?}: {got:?} vs {want:?}"),
            }
        }
    }
}
