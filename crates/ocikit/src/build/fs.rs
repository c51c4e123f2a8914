//! The file operations of a build: copying trees, unpacking a tar base
//! safely, and placing imports with modes that do not depend on the host.
//!
//! Files brought in from the host (imports, overlay directories) are what
//! differs between two machines or two checkouts: their owner is the
//! builder's and their permission bits follow its umask. So they enter the
//! image owned by root (or the import's `uid`/`gid`) with normalised modes:
//! 0755 for directories and executables, 0644 for other files, or the
//! import's `mode`. What `run` writes inside the container is kept exactly.

use std::fs;
use std::io;
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
    let reader = crate::layer::decompress(file).map_err(|e| io_err(tar_path, e))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    mkdirs(root)?;
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(|e| io_err(tar_path, e))? {
        let mut entry = entry.map_err(|e| io_err(tar_path, e))?;
        let name = entry.path().map_err(|e| io_err(tar_path, e))?.into_owned();
        let mut rel = PathBuf::new();
        for component in name.components() {
            match component {
                Component::Normal(part) => rel.push(part),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(BuildError::BadTar {
                        path: tar_path.to_owned(),
                        entry: name.display().to_string(),
                        message: "it climbs out of the root with `..`".into(),
                    })
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
                return Err(BuildError::BadTar {
                    path: tar_path.to_owned(),
                    entry: name.display().to_string(),
                    message: "its hard link target climbs out of the root with `..`".into(),
                });
            }
        }
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            mkdirs_755(parent)?;
        }
        if entry.header().entry_type().is_dir() {
            dirs.push((target.clone(), entry.header().mode().unwrap_or(0o755)));
        }
        entry.unpack(&target).map_err(|e| BuildError::BadTar {
            path: tar_path.to_owned(),
            entry: name.display().to_string(),
            message: e.to_string(),
        })?;
    }
    // Directory modes last, so a read-only directory can still be filled.
    for (dir, mode) in dirs.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io_err(&dir, e))?;
    }
    Ok(())
}

/// How an import's files are owned and moded in the image.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    /// Mode for files (and, when set, directories keep 0755).
    pub mode: Option<u32>,
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
        fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).map_err(|e| io_err(dst, e))?;
    } else if ft.is_file() {
        remove_any(dst)?;
        fs::copy(src, dst).map_err(|e| io_err(src, e))?;
        let mode = own.mode.unwrap_or(if meta.mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        });
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
            uid: 0,
            gid: 0,
        };
        copy_normalized(&src.join("data"), &dir.path().join("one"), fixed).expect("copy");
        assert_eq!(
            fs::metadata(dir.path().join("one")).expect("m").mode() & 0o7777,
            0o600
        );
        assert!(inside(Path::new("/r"), "/a/../../b").is_err());
        assert_eq!(
            inside(Path::new("/r"), "/a/./b").expect("ok"),
            Path::new("/r/a/b")
        );
    }
}
