//! `run` steps: the script executed in a container over the image's root
//! filesystem through an OCI runtime (runc by default), as stacker does but
//! without LXC.
//!
//! The container shares the host's network (as stacker's does) and sees the
//! host's resolv.conf, the imports (read-only, at `/stacker/imports`, or
//! `/stacker` and `/.stacker/imports` for the legacy `import`), the `binds`,
//! and an environment of `build_env`, the host variables
//! `build_env_passthrough` lets through (proxy variables, TERM and
//! SOURCE_DATE_EPOCH by default; empty values left out, as in stacker) and
//! `STACKER_LAYER_NAME`. Its stdout and stderr share one pipe, so a failing
//! script's tail is shown in the order it was written. Mount
//! points the runtime had to create in the root filesystem are removed
//! afterwards, so they never end up in the layer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::BuildError;
use crate::manifest::Platform;

/// stacker's default `build_env_passthrough`: proxies, TERM and
/// SOURCE_DATE_EPOCH.
const DEFAULT_PASSTHROUGH: &[&str] = &[
    "ftp_proxy",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "FTP_PROXY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "TERM",
    "SOURCE_DATE_EPOCH",
];

/// How much of a failing script's output an error shows.
const TAIL_LINES: usize = 20;

/// A receiver of `run` output lines.
pub type Echo = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// A bind mount of the `run` container.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Container path.
    pub dest: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// One `run` step, ready to execute.
#[derive(Clone)]
pub struct RunStep<'a> {
    /// The image (for messages and the container id).
    pub image: &'a str,
    /// The script, with its `#!` line.
    pub script: &'a str,
    /// The root filesystem it runs over (changed in place).
    pub rootfs: &'a Path,
    /// A scratch directory for the bundle.
    pub bundle: &'a Path,
    /// Bind mounts (imports, binds).
    pub mounts: Vec<Mount>,
    /// `build_env`.
    pub build_env: &'a BTreeMap<String, String>,
    /// `build_env_passthrough` regexes (empty: stacker's defaults).
    pub passthrough: &'a [String],
    /// The runtime program (`runc`).
    pub runtime: &'a str,
    /// Receives each line the script prints (stdout and stderr), e.g. to
    /// show it to a person; the library itself never prints.
    pub echo: Option<Echo>,
}

/// What binfmt_misc calls an architecture's qemu handler.
fn qemu_name(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        other => other,
    }
}

/// Whether this machine can execute programs of `platform`: Linux on its own
/// architecture (and 386 on amd64), or one a binfmt_misc handler (qemu-user)
/// is registered and enabled for.
pub fn can_execute(platform: &Platform) -> bool {
    let (host_os, host_arch) = crate::copy::host_platform();
    if platform.os != host_os {
        return false;
    }
    if platform.architecture == host_arch
        || (host_arch == "amd64" && platform.architecture == "386")
    {
        return true;
    }
    let handler = Path::new("/proc/sys/fs/binfmt_misc")
        .join(format!("qemu-{}", qemu_name(&platform.architecture)));
    std::fs::read_to_string(handler).is_ok_and(|s| s.starts_with("enabled"))
}

/// Fails with a clear error when `image` has a script to execute for a
/// platform this machine cannot execute.
pub fn check_platform(image: &str, platform: &Platform) -> Result<(), BuildError> {
    if can_execute(platform) {
        return Ok(());
    }
    let (host_os, host_arch) = crate::copy::host_platform();
    let wanted = super::base::platform_name(platform);
    Err(BuildError::Runtime {
        image: image.to_owned(),
        message: format!(
            "its run (or generate_labels) script must execute {wanted} programs, and this {host_os}/{host_arch} machine cannot: no binfmt_misc handler for {arch} is registered (install qemu-user-static with binfmt support, build {wanted} on a {arch} machine, or leave {wanted} out of --platform)",
            arch = platform.architecture,
        ),
    })
}

/// The environment of a `run` container.
pub fn environment(
    image: &str,
    build_env: &BTreeMap<String, String>,
    passthrough: &[String],
    host: impl Iterator<Item = (String, String)>,
) -> Result<Vec<String>, BuildError> {
    let patterns: Vec<String> = if passthrough.is_empty() {
        DEFAULT_PASSTHROUGH
            .iter()
            .map(|s| regex::escape(s))
            .collect()
    } else {
        passthrough.to_vec()
    };
    let regexes = patterns
        .iter()
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| BuildError::Runtime {
                image: image.to_owned(),
                message: format!("build_env_passthrough {p:?}: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut env: BTreeMap<String, String> = host
        .filter(|(k, _)| regexes.iter().any(|r| r.is_match(k)))
        .collect();
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for (k, v) in build_env {
        env.insert(k.clone(), v.clone());
    }
    env.insert("STACKER_LAYER_NAME".into(), image.to_owned());
    // As in stacker, a variable with an empty value is not set at all.
    Ok(env
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect())
}

/// The OCI runtime config of a `run` container.
fn runtime_config(rootfs: &Path, env: &[String], mounts: &[Mount]) -> serde_json::Value {
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
        "CAP_SYS_CHROOT",
        "CAP_MKNOD",
        "CAP_AUDIT_WRITE",
        "CAP_SETFCAP",
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_LINUX_IMMUTABLE",
    ];
    let mut all_mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    if Path::new("/etc/resolv.conf").exists() {
        all_mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind",
            "source": "/etc/resolv.conf", "options": ["rbind", "ro"]}));
    }
    for m in mounts {
        let mut options = vec!["rbind"];
        if m.readonly {
            options.push("ro");
        }
        all_mounts.push(json!({"destination": m.dest, "type": "bind",
            "source": m.source, "options": options}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0, "umask": 18},
            "args": ["/.oci-build/run"],
            "env": env,
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": "oci-build",
        "mounts": all_mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Paths (relative to the rootfs) the runtime may create as mount points.
fn mount_points(mounts: &[Mount]) -> Vec<String> {
    let mut points: Vec<String> = ["/proc", "/dev", "/sys", "/etc/resolv.conf", "/.oci-build"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in mounts {
        points.push(m.dest.clone());
    }
    points
}

/// Every path from `/` to `point` (`/a`, `/a/b`, …), shallowest first.
fn ancestors_of(point: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in point.split('/').filter(|p| !p.is_empty()) {
        acc.push('/');
        acc.push_str(part);
        out.push(acc.clone());
    }
    out
}

/// Runs the step's script in a container; its changes stay in the rootfs.
pub fn run(step: &RunStep<'_>) -> Result<(), BuildError> {
    let io = |path: &Path, source: std::io::Error| BuildError::Io {
        path: path.to_owned(),
        source,
    };
    super::fs::remove_tree(step.bundle)?;
    let script_dir = step.bundle.join("script");
    super::fs::mkdirs(&script_dir)?;
    let script = script_dir.join("run");
    std::fs::write(&script, step.script).map_err(|e| io(&script, e))?;
    std::fs::set_permissions(
        &script,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .map_err(|e| io(&script, e))?;
    let mut mounts = step.mounts.clone();
    mounts.push(Mount {
        source: script_dir,
        dest: "/.oci-build".into(),
        readonly: true,
    });
    // Record which mount points (and their parents) exist, to remove those
    // the runtime creates.
    let mut created: Vec<String> = Vec::new();
    for point in mount_points(&mounts) {
        for ancestor in ancestors_of(&point) {
            let host = super::fs::inside(step.rootfs, &ancestor)?;
            if std::fs::symlink_metadata(&host).is_err() && !created.contains(&ancestor) {
                created.push(ancestor);
            }
        }
    }
    let env = environment(
        step.image,
        step.build_env,
        step.passthrough,
        std::env::vars(),
    )?;
    let config = runtime_config(step.rootfs, &env, &mounts);
    let config_path = step.bundle.join("config.json");
    std::fs::write(&config_path, config.to_string()).map_err(|e| io(&config_path, e))?;
    let state = step.bundle.join("state");
    super::fs::mkdirs(&state)?;
    let id: String = format!("oci-build-{}-{}", std::process::id(), step.image)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // One pipe for stdout and stderr, so the output (and the tail an error
    // shows) keeps the order the script wrote it in.
    let (reader, writer) = std::io::pipe().map_err(|e| io(step.bundle, e))?;
    let writer_too = writer.try_clone().map_err(|e| io(step.bundle, e))?;
    let mut command = Command::new(step.runtime);
    command
        .arg("--root")
        .arg(&state)
        .arg("run")
        .arg("--bundle")
        .arg(step.bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_too);
    let spawned = command.spawn();
    // Our copies of the pipe's write end go with the command, so the reader
    // sees the end of the output when the runtime exits.
    drop(command);
    let mut child = spawned.map_err(|e| BuildError::Runtime {
        image: step.image.to_owned(),
        message: format!(
            "cannot start the OCI runtime {:?}: {e} (install runc, or choose one with --runtime)",
            step.runtime
        ),
    })?;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let pump = {
        let tail = tail.clone();
        let echo = step.echo.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                if let Some(echo) = &echo {
                    echo(&line);
                }
                if let Ok(mut t) = tail.lock() {
                    t.push_back(line);
                    if t.len() > TAIL_LINES {
                        t.pop_front();
                    }
                }
            }
        })
    };
    let status = child.wait().map_err(|e| io(Path::new(step.runtime), e))?;
    let _ = pump.join();
    // Remove the mount points the runtime created, deepest first.
    for path in created.iter().rev() {
        let host = super::fs::inside(step.rootfs, path)?;
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&host);
            }
            Ok(m) if m.len() == 0 => {
                let _ = std::fs::remove_file(&host);
            }
            _ => {}
        }
    }
    super::fs::remove_tree(step.bundle)?;
    if !status.success() {
        let lines: Vec<String> = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        return Err(BuildError::Run {
            image: step.image.to_owned(),
            status: status
                .code()
                .map_or_else(|| status.to_string(), |c| c.to_string()),
            tail: lines.join("\n"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_filtered_and_sorted() {
        let host = [
            ("HTTP_PROXY", "http://p"),
            ("SECRET", "x"),
            ("TERM", "xterm"),
            ("MY_VAR", "1"),
            ("SOURCE_DATE_EPOCH", "10"),
            ("NO_PROXY", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut build_env = BTreeMap::new();
        build_env.insert("B".to_owned(), "2".to_owned());
        let env = environment("img", &build_env, &[], host.clone().into_iter()).expect("env");
        assert_eq!(
            env,
            [
                "B=2",
                "HTTP_PROXY=http://p",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "SOURCE_DATE_EPOCH=10",
                "STACKER_LAYER_NAME=img",
                "TERM=xterm"
            ]
        );
        let only = environment(
            "img",
            &BTreeMap::new(),
            &["MY_.*".to_owned()],
            host.into_iter(),
        )
        .expect("env");
        assert!(only.contains(&"MY_VAR=1".to_owned()));
        assert!(!only.iter().any(|e| e.starts_with("TERM=")));
        assert_eq!(ancestors_of("/a/b/c"), ["/a", "/a/b", "/a/b/c"]);
    }

    #[test]
    fn foreign_platforms_are_refused_by_name() {
        let (os, arch) = crate::copy::host_platform();
        let platform = |os: &str, arch: &str| Platform {
            architecture: arch.into(),
            os: os.into(),
            variant: None,
            extra: Default::default(),
        };
        assert!(can_execute(&platform(os, arch)));
        assert!(!can_execute(&platform("windows", arch)));
        let foreign = if arch == "s390x" { "mips64" } else { "s390x" };
        if !Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x").exists() {
            let err = check_platform("img", &platform("linux", foreign)).expect_err("foreign");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "image img: its run (or generate_labels) script must execute linux/{foreign} programs, and this {os}/{arch} machine cannot"
                )),
                "{text}"
            );
            assert!(text.contains("leave linux/"), "{text}");
        }
    }
}
