//! The file operations of a build: copying trees, unpacking a tar base
//! safely, and placing imports with modes that do not depend on the host.
//!
//! Files brought in from the host (imports, overlay directories) are what
//! differs between two machines or two checkouts: their owner is the
//! builder's and their permission bits follow its umask. So they enter the
//! image owned by root (or the import's `uid`/`gid`) with normalised modes:
//! 0755 for directories and executables, 0644 for other files, or the
//! import's `mode`. Overlay directories are the exception stacker makes:
//! added as they are, their permission bits kept (so a umask that changes
//! them changes the image), only their owner normalised to root. What
//! `run` writes inside the container is kept exactly.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::BuildError;

fn io_err(path: &Path, source: io::Error) -> BuildError {
    BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Removes `path` (a tree) if it exists.
pub fn remove_tree(path: &Path) -> Result<(), BuildError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Creates `path` and its parents.
pub fn mkdirs(path: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(path).map_err(|e| io_err(path, e))
}

/// Creates `path` and any missing parents with mode 0755, whatever the
/// umask, because such directories end up in the image.
pub fn mkdirs_755(path: &Path) -> Result<(), BuildError> {
    let mut missing = Vec::new();
    let mut at = path;
    while fs::symlink_metadata(at).is_err() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for dir in missing.iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(dir, e)),
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

/// Copies the contents of `src` into `dst` with everything preserved
/// (owners, modes, links, hard links, devices, xattrs): `cp -a`, which
/// also uses reflinks where the filesystem has them.
pub fn copy_preserving(src: &Path, dst: &Path) -> Result<(), BuildError> {
    mkdirs(dst)?;
    let out = Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .output()
        .map_err(|e| io_err(Path::new("cp"), e))?;
    if !out.status.success() {
        return Err(io_err(
            src,
            io::Error::other(format!(
                "copying to {} failed: {}",
                dst.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        ));
    }
    Ok(())
}

/// Unpacks a tar (plain, gzip or zstd) into `root`, refusing entries that
/// would land outside it (`../`), as a base image must not write to the host.
pub fn unpack_tar(tar_path: &Path, root: &Path) -> Result<(), BuildError> {
    let file = fs::File::open(tar_path).map_err(|e| io_err(tar_path, e))?;
    unpack(file, tar_path, root, false)
}

/// Applies an image layer (plain, gzip or zstd) over `root`, as a runtime
/// does: its entries unpacked (never outside `root`), `.wh.NAME` removing
/// NAME from the layers below and `.wh..wh..opq` emptying its directory of
/// what the layers below put there. The whole blob is read, so a reader
/// that verifies its digest at the end of the stream gets to check it.
/// `what` names the blob in errors.
pub fn apply_layer(reader: impl Read + Send, what: &Path, root: &Path) -> Result<(), BuildError> {
    unpack(reader, what, root, true)
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

fn unpack(
    reader: impl Read + Send,
    what: &Path,
    root: &Path,
    whiteouts: bool,
) -> Result<(), BuildError> {
    let mut reader = crate::layer::decompress(reader).map_err(|e| io_err(what, e))?;
    let mut archive = tar::Archive::new(&mut reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    mkdirs(root)?;
    let bad = |entry: &Path, message: String| BuildError::BadTar {
        path: what.to_owned(),
        entry: entry.display().to_string(),
        message,
    };
    let mut dirs = Vec::new();
    // What this layer itself put in place: whiteouts only hide lower layers.
    let mut added: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(|e| io_err(what, e))? {
        let mut entry = entry.map_err(|e| io_err(what, e))?;
        let name = entry.path().map_err(|e| io_err(what, e))?.into_owned();
        let mut rel = PathBuf::new();
        for component in name.components() {
            match component {
                Component::Normal(part) => rel.push(part),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(bad(&name, "it climbs out of the root with `..`".into()))
                }
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        if let Ok(Some(link)) = entry.link_name() {
            if entry.header().entry_type().is_hard_link()
                && link.components().any(|c| c == Component::ParentDir)
            {
                return Err(bad(
                    &name,
                    "its hard link target climbs out of the root with `..`".into(),
                ));
            }
        }
        let file_name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if whiteouts && file_name.starts_with(WHITEOUT) {
            let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir = inside_no_symlinks(root, &parent)?;
            if file_name == OPAQUE {
                if let Ok(children) = fs::read_dir(&dir) {
                    for child in children.flatten() {
                        if !added.contains(&parent.join(child.file_name())) {
                            remove_any(&child.path())?;
                        }
                    }
                }
            } else {
                let hidden = parent.join(&file_name[WHITEOUT.len()..]);
                if !added.contains(&hidden) {
                    remove_any(&dir.join(&file_name[WHITEOUT.len()..]))?;
                }
            }
            continue;
        }
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            mkdirs_755(parent)?;
        }
        if entry.header().entry_type().is_dir() {
            dirs.push((target.clone(), entry.header().mode().unwrap_or(0o755)));
            if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                remove_any(&target)?;
            }
        } else if whiteouts {
            // A later layer may replace a directory with a file.
            if let Ok(meta) = fs::symlink_metadata(&target) {
                if meta.is_dir() {
                    remove_tree(&target)?;
                }
            }
        }
        // unpack_in resolves hard links inside `root` and refuses to write
        // through a symlink that leads out of it.
        let unpacked = entry.unpack_in(root).map_err(|e| {
            // tar wraps the OS error: show both.
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            bad(&name, format!("{e}{cause}"))
        })?;
        if !unpacked {
            return Err(bad(&name, "it would land outside the root".into()));
        }
        added.insert(rel);
    }
    // Directory modes last, so a read-only directory can still be filled.
    for (dir, mode) in dirs.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io_err(&dir, e))?;
    }
    io::copy(&mut reader, &mut io::sink()).map_err(|e| io_err(what, e))?;
    Ok(())
}

/// `rel` under `root`, refusing a path whose directories include a symlink
/// (a whiteout must not delete through one, out of the root).
fn inside_no_symlinks(root: &Path, rel: &Path) -> Result<PathBuf, BuildError> {
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io_err(
                &at,
                io::Error::other("a whiteout's directory is a symlink; refusing to follow it"),
            ));
        }
    }
    Ok(at)
}

/// How an import's files are owned and moded in the image.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    /// Mode for files (and, when set, directories keep 0755).
    pub mode: Option<u32>,
    /// Keep each file's and directory's own permission bits (overlay_dirs,
    /// which stacker adds as they are) instead of normalising them.
    pub keep_modes: bool,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// Copies `src` (a file, a symlink or a directory) to `dst` with host-free
/// modes and the given ownership. A directory is copied with its contents.
pub fn copy_normalized(src: &Path, dst: &Path, own: Ownership) -> Result<(), BuildError> {
    let meta = fs::symlink_metadata(src).map_err(|e| io_err(src, e))?;
    if let Some(parent) = dst.parent() {
        mkdirs_755(parent)?;
    }
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| io_err(src, e))?;
        remove_any(dst)?;
        std::os::unix::fs::symlink(&target, dst).map_err(|e| io_err(dst, e))?;
    } else if ft.is_dir() {
        if !dst.is_dir() {
            remove_any(dst)?;
            mkdirs_755(dst)?;
        }
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(|e| io_err(src, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(src, e))?;
        names.sort();
        for name in names {
            copy_normalized(&src.join(&name), &dst.join(&name), own)?;
        }
        let mode = if own.keep_modes {
            meta.mode() & 0o7777
        } else {
            0o755
        };
        fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(|e| io_err(dst, e))?;
    } else if ft.is_file() {
        remove_any(dst)?;
        fs::copy(src, dst).map_err(|e| io_err(src, e))?;
        let mode = match own.mode {
            Some(mode) => mode,
            None if own.keep_modes => meta.mode() & 0o7777,
            None if meta.mode() & 0o111 != 0 => 0o755,
            None => 0o644,
        };
        fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(|e| io_err(dst, e))?;
    } else {
        return Err(io_err(
            src,
            io::Error::other("only files, directories and symlinks can be imported"),
        ));
    }
    std::os::unix::fs::lchown(dst, Some(own.uid), Some(own.gid)).map_err(|e| io_err(dst, e))
}

fn remove_any(path: &Path) -> Result<(), BuildError> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => fs::remove_file(path).map_err(|e| io_err(path, e)),
    }
}

/// `path` inside `root`, refusing `..` (an image path always stays inside
/// its root filesystem).
pub fn inside(root: &Path, path: &str) -> Result<PathBuf, BuildError> {
    let mut out = root.to_path_buf();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(io_err(
                    Path::new(path),
                    io::Error::other("an image path may not contain `..`"),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_refuses_parent_paths() {
        let dir = tempfile::tempdir().expect("tmp");
        let tar_path = dir.path().join("evil.tar");
        let mut data = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut data);
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`, so write the raw name.
            header.as_old_mut().name[..9].copy_from_slice(b"../escape");
            header.set_cksum();
            builder.append(&header, &b"x"[..]).expect("append");
            builder.finish().expect("finish");
        }
        fs::write(&tar_path, &data).expect("write");
        let err = unpack_tar(&tar_path, &dir.path().join("root")).expect_err("refused");
        assert!(
            err.to_string()
                .contains("../escape: it climbs out of the root"),
            "{err}"
        );
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn imports_get_host_free_modes() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).expect("mkdir");
        fs::write(src.join("sub/tool"), b"#!").expect("w");
        fs::write(src.join("data"), b"d").expect("w");
        fs::set_permissions(src.join("sub/tool"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        fs::set_permissions(src.join("data"), fs::Permissions::from_mode(0o664)).expect("chmod");
        fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o775)).expect("chmod");
        let dst = dir.path().join("dst");
        let own = Ownership {
            mode: None,
            keep_modes: false,
            uid: 0,
            gid: 0,
        };
        copy_normalized(&src, &dst, own).expect("copy");
        let mode = |p: &str| fs::metadata(dst.join(p)).expect("meta").mode() & 0o7777;
        assert_eq!(mode("sub/tool"), 0o755);
        assert_eq!(mode("data"), 0o644);
        assert_eq!(mode("sub"), 0o755);
        let fixed = Ownership {
            mode: Some(0o600),
            keep_modes: false,
            uid: 0,
            gid: 0,
        };
        copy_normalized(&src.join("data"), &dir.path().join("one"), fixed).expect("copy");
        assert_eq!(
            fs::metadata(dir.path().join("one")).expect("m").mode() & 0o7777,
            0o600
        );
        // overlay_dirs keep their own bits.
        let kept = Ownership {
            mode: None,
            keep_modes: true,
            uid: 0,
            gid: 0,
        };
        let as_is = dir.path().join("as-is");
        copy_normalized(&src, &as_is, kept).expect("copy");
        let mode = |p: &str| fs::metadata(as_is.join(p)).expect("meta").mode() & 0o7777;
        assert_eq!(
            (mode("sub/tool"), mode("data"), mode("sub")),
            (0o700, 0o664, 0o775)
        );
        assert!(inside(Path::new("/r"), "/a/../../b").is_err());
        assert_eq!(
            inside(Path::new("/r"), "/a/./b").expect("ok"),
            Path::new("/r/a/b")
        );
    }

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut data = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut data);
            for (path, content) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_uid(0);
                header.set_gid(0);
                header.set_mtime(0);
                match content {
                    Some(bytes) => {
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(bytes.len() as u64);
                        header.set_mode(0o644);
                        builder
                            .append_data(&mut header, path, &bytes[..])
                            .expect("append");
                    }
                    None => {
                        header.set_entry_type(tar::EntryType::Directory);
                        header.set_size(0);
                        header.set_mode(0o755);
                        builder
                            .append_data(&mut header, path, &b""[..])
                            .expect("append");
                    }
                }
            }
            builder.finish().expect("finish");
        }
        data
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("root");
        let what = Path::new("layer");
        let lower = layer(&[
            ("etc", None),
            ("etc/keep", Some(b"k")),
            ("etc/gone", Some(b"g")),
            ("opaque", None),
            ("opaque/old", Some(b"o")),
            ("dir-to-file", None),
            ("dir-to-file/x", Some(b"x")),
        ]);
        apply_layer(&lower[..], what, &root).expect("lower");
        let upper = layer(&[
            ("etc/.wh.gone", Some(b"")),
            ("opaque", None),
            ("opaque/.wh..wh..opq", Some(b"")),
            ("opaque/new", Some(b"n")),
            ("dir-to-file", Some(b"now a file")),
        ]);
        apply_layer(&upper[..], what, &root).expect("upper");
        assert!(root.join("etc/keep").exists());
        assert!(!root.join("etc/gone").exists());
        assert!(!root.join("etc/.wh.gone").exists());
        assert!(!root.join("opaque/old").exists());
        assert_eq!(fs::read(root.join("opaque/new")).expect("new"), b"n");
        assert!(!root.join("opaque/.wh..wh..opq").exists());
        assert_eq!(
            fs::read(root.join("dir-to-file")).expect("file"),
            b"now a file"
        );

        // A whiteout through a symlink is refused.
        std::os::unix::fs::symlink("/", root.join("escape")).expect("ln");
        let evil = layer(&[("escape/.wh.etc", Some(b""))]);
        let err = apply_layer(&evil[..], what, &root).expect_err("refused");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(Path::new("/etc").exists());
    }
}
