//! The distribution spec's grammar for repository names and tags.
//!
//! Both the client (parsing references) and the server (routing requests)
//! validate names with these functions, so the two can never disagree about
//! what a valid repository is. Hand-written rather than a regex: the grammar is
//! tiny and this keeps `regex` out of the library.

/// The longest repository name a registry must accept (distribution's limit,
/// the hostname included when a client counts it).
pub const MAX_NAME_LEN: usize = 255;

/// The longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// Why a repository name or tag is invalid; the message shows the grammar.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The repository name breaks the spec's path-component grammar.
    #[error(
        "invalid repository name {0:?}: components are lowercase letters and digits, \
         separated by '.', '_', '__' or dashes, joined by '/'"
    )]
    Repository(String),
    /// The repository name is over [`MAX_NAME_LEN`].
    #[error("invalid repository name: {0} characters, at most 255 are allowed")]
    RepositoryTooLong(usize),
    /// The tag breaks `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error(
        "invalid tag {0:?}: a tag is 1 to 128 of [A-Za-z0-9_.-] and does not start with '.' or '-'"
    )]
    Tag(String),
}

/// Checks a repository name (`library/alpine`, `team/app.v2`).
pub fn validate_repository(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::RepositoryTooLong(name.len()));
    }
    if name.split('/').all(is_path_component) {
        Ok(())
    } else {
        Err(NameError::Repository(name.to_owned()))
    }
}

/// Checks a tag (`latest`, `1.0`, `sha256-<hex>.sig`).
pub fn validate_tag(tag: &str) -> Result<(), NameError> {
    let bytes = tag.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes[1.min(bytes.len())..]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && tag.len() <= MAX_TAG_LEN {
        Ok(())
    } else {
        Err(NameError::Tag(tag.to_owned()))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of alphanumerics is required here.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // Then a separator: '.', '_', '__' or one or more '-'.
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += if bytes.get(i + 1) == Some(&b'_') {
                    2
                } else {
                    1
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        let good = [
            "a",
            "library/alpine",
            "foo/blobs",
            "foo/index.json",
            "foo/oci-layout",
            "a__b",
            "a---b",
            "a.b_c/d-e",
            "0/1",
        ];
        for name in good {
            assert_eq!(validate_repository(name), Ok(()), "{name}");
        }
        let bad = [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "a._b", "-a", "a-", "../a", "a/../b",
            "a b", "a:b", "é",
        ];
        for name in bad {
            let err = validate_repository(name).expect_err(name);
            assert!(
                err.to_string().contains("lowercase letters"),
                "{name}: {err}"
            );
        }
        let long = "a".repeat(256);
        assert_eq!(
            validate_repository(&long),
            Err(NameError::RepositoryTooLong(256))
        );
    }

    #[test]
    fn tags() {
        for tag in [
            "latest",
            "1.0",
            "_x",
            "sha256-abc.sig",
            "V-1.2_3",
            &"t".repeat(128),
        ] {
            assert_eq!(validate_tag(tag), Ok(()), "{tag}");
        }
        for tag in ["", ".x", "-x", "a/b", "a:b", "a@b", &"t".repeat(129)] {
            let err = validate_tag(tag).expect_err(tag);
            assert!(err.to_string().contains("1 to 128"), "{tag}: {err}");
        }
    }
}
