//! htpasswd (bcrypt) files made by the real `htpasswd -B`, and the
//! docker-registry `auth.htpasswd` section that uses one.

use std::path::Path;
use std::process::Command;

/// Writes `dir/htpasswd` for `users` and returns the registry's `auth:`
/// section, or `None` when `htpasswd` is missing (see [`crate::require`]).
pub fn registry_yaml(dir: &Path, users: &[(&str, &str)]) -> Option<String> {
    let program = crate::require("htpasswd")?;
    let mut file = String::new();
    for (user, password) in users {
        let out = Command::new(&program)
            .args(["-Bbn", user, password])
            .output()
            .expect("running htpasswd");
        assert!(out.status.success(), "htpasswd failed");
        file.push_str(String::from_utf8_lossy(&out.stdout).trim());
        file.push('\n');
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, file).expect("writing htpasswd");
    Some(format!(
        "auth:\n  htpasswd:\n    realm: ocikit-test\n    path: {}\n",
        path.display()
    ))
}
