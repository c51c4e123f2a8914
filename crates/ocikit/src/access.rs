//! Who may do what to which repository: zot's `accessControl` model, so an
//! existing zot configuration means the same thing to oci-serve.
//!
//! Repositories are matched by glob (`**` any number of path components, `*`
//! within one, `?`, `[a-z]`, `{a,b}`); the longest matching pattern decides,
//! as in zot. Within it a user is allowed an action by a policy naming the
//! user or one of their groups, by `defaultPolicy` (any authenticated user) or
//! `anonymousPolicy` (no user); admins (`adminPolicy`) are allowed their
//! actions everywhere. Everything not allowed is denied.

use std::collections::BTreeMap;

use serde::Deserialize;

/// An action on a repository, as zot names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Pull: GET/HEAD of manifests, blobs, tags, referrers.
    Read,
    /// Push something new: blobs, new tags, manifests by digest.
    Create,
    /// Move an existing tag to another manifest.
    Update,
    /// DELETE of manifests, tags and blobs.
    Delete,
}

/// One policy: these users and groups may do these actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// User names.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names (from [`AccessControl::groups`]).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Allowed actions.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// The rules for the repositories one glob matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyGroup {
    /// Per-user and per-group rules.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Actions any authenticated user may do.
    #[serde(default)]
    pub default_policy: Vec<Action>,
    /// Actions a request without credentials may do.
    #[serde(default)]
    pub anonymous_policy: Vec<Action>,
}

/// A group's members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// User names.
    #[serde(default)]
    pub users: Vec<String>,
}

/// zot's `http.accessControl` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessControl {
    /// Named groups of users.
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    /// Glob → rules.
    #[serde(default)]
    pub repositories: BTreeMap<String, PolicyGroup>,
    /// Users and groups allowed their actions on every repository.
    #[serde(default)]
    pub admin_policy: Policy,
}

/// Who is asking: a user name (and the groups it belongs to), or nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `None` for an anonymous request.
    pub user: Option<String>,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
}

impl AccessControl {
    /// The identity of `user`, with the groups the configuration puts it in.
    pub fn identify(&self, user: Option<&str>) -> Identity {
        let groups = match user {
            Some(user) => self
                .groups
                .iter()
                .filter(|(_, g)| g.users.iter().any(|u| u == user))
                .map(|(name, _)| name.clone())
                .collect(),
            None => Vec::new(),
        };
        Identity {
            user: user.map(str::to_owned),
            groups,
        }
    }

    /// Whether `who` may do `action` on `repository`.
    pub fn allows(&self, who: &Identity, action: Action, repository: &str) -> bool {
        let by_repository = self
            .repositories
            .iter()
            .filter(|(pattern, _)| glob_match(pattern, repository))
            .max_by_key(|(pattern, _)| pattern.len())
            .is_some_and(|(_, rules)| permitted(rules, who, action));
        by_repository || self.is_admin_for(who, action)
    }

    /// Whether some repository might allow `who` to do `action`: a cheap
    /// answer to "should this request be challenged for credentials".
    pub fn allows_anywhere(&self, who: &Identity, action: Action) -> bool {
        self.is_admin_for(who, action)
            || self
                .repositories
                .values()
                .any(|rules| permitted(rules, who, action))
    }

    fn is_admin_for(&self, who: &Identity, action: Action) -> bool {
        let admin = &self.admin_policy;
        admin.actions.contains(&action) && names(admin, who)
    }
}

/// Whether a policy names the user or one of its groups.
fn names(policy: &Policy, who: &Identity) -> bool {
    who.user
        .as_ref()
        .is_some_and(|user| policy.users.contains(user))
        || who.groups.iter().any(|g| policy.groups.contains(g))
}

fn permitted(rules: &PolicyGroup, who: &Identity, action: Action) -> bool {
    let by_policy = rules
        .policies
        .iter()
        .any(|p| p.actions.contains(&action) && names(p, who));
    let by_default = match who.user {
        Some(_) => rules.default_policy.contains(&action),
        None => rules.anonymous_policy.contains(&action),
    };
    by_policy || by_default
}

/// Matches a repository name against a doublestar glob: `**` spans any number
/// of `/`-separated components (also none), `*` and `?` stay within one,
/// `[…]` is a character class (`!` or `^` negates), `{a,b}` alternatives.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p {
        [] => n.is_empty(),
        // `x/**` also matches `x` itself.
        ['/', '*', '*'] if n.is_empty() => true,
        ['*', '*'] => true,
        ['*', '*', rest @ ..] => {
            // `**/rest`: rest matches here, or after any later '/'.
            let rest = rest.strip_prefix(&['/']).unwrap_or(rest);
            match_from(rest, n)
                || (0..n.len()).any(|i| n[i] == '/' && match_from(rest, &n[i + 1..]))
        }
        ['*', rest @ ..] => (0..=n.len())
            .take_while(|&i| i == 0 || n[i - 1] != '/')
            .any(|i| match_from(rest, &n[i..])),
        ['?', rest @ ..] => n.first().is_some_and(|&c| c != '/') && match_from(rest, &n[1..]),
        ['[', rest @ ..] => match_class(rest, n),
        ['{', rest @ ..] => match_alternatives(rest, n),
        ['\\', c, rest @ ..] | [c, rest @ ..] => n.first() == Some(c) && match_from(rest, &n[1..]),
    }
}

fn match_class(p: &[char], n: &[char]) -> bool {
    let Some(close) = p.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) else {
        return n.first() == Some(&'[') && match_from(p, &n[1..]);
    };
    let Some(&c) = n.first() else { return false };
    let (negated, class) = match p[..close].split_first() {
        Some(('!' | '^', class)) => (true, class),
        _ => (false, &p[..close]),
    };
    let mut hit = false;
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == '-' {
            hit |= (class[i]..=class[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= class[i] == c;
            i += 1;
        }
    }
    hit != negated && c != '/' && match_from(&p[close + 1..], &n[1..])
}

fn match_alternatives(p: &[char], n: &[char]) -> bool {
    let Some(close) = p.iter().position(|&c| c == '}') else {
        return n.first() == Some(&'{') && match_from(p, &n[1..]);
    };
    let rest = &p[close + 1..];
    p[..close].split(|&c| c == ',').any(|alternative| {
        let candidate: Vec<char> = alternative.iter().chain(rest).copied().collect();
        match_from(&candidate, n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("**", "a", true),
            ("**", "a/b/c", true),
            ("team/*", "team/app", true),
            ("team/*", "team/app/x", false),
            ("team/**", "team/app/x", true),
            ("team/**", "team", true),
            ("team/**", "teams/x", false),
            ("**/app", "a/b/app", true),
            ("**/app", "app", true),
            ("**/app", "a/bapp", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("v[0-9]", "v7", true),
            ("v[!0-9]", "v7", false),
            ("{infra,ops}/*", "ops/x", true),
            ("{infra,ops}/*", "dev/x", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob_match(pattern, name), expected, "{pattern} vs {name}");
        }
    }

    fn config() -> AccessControl {
        let json = r#"{
          "groups": {"devs": {"users": ["dana"]}, "ops": {"users": ["otto"]}},
          "repositories": {
            "**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}],
                   "defaultPolicy": ["read"], "anonymousPolicy": ["read"]},
            "private/**": {"policies": [{"groups": ["devs"], "actions": ["read", "create", "update"]}]},
            "private/public-*": {"anonymousPolicy": ["read"]}
          },
          "adminPolicy": {"users": ["root"], "groups": ["ops"], "actions": ["read", "create", "update", "delete"]}
        }"#;
        serde_json::from_str(json).expect("config")
    }

    #[test]
    fn longest_pattern_decides_as_in_zot() {
        let ac = config();
        let anon = ac.identify(None);
        let alice = ac.identify(Some("alice"));
        let dana = ac.identify(Some("dana"));
        let root = ac.identify(Some("root"));
        let otto = ac.identify(Some("otto"));
        let cases = [
            (&anon, Action::Read, "app", true),
            (&anon, Action::Create, "app", false),
            (&alice, Action::Create, "app", true),
            (&alice, Action::Delete, "app", false),
            // The `private/**` rules replace `**`'s: alice loses even read.
            (&alice, Action::Read, "private/x", false),
            (&anon, Action::Read, "private/x", false),
            (&dana, Action::Update, "private/x", true),
            (&dana, Action::Create, "app", false),
            (&dana, Action::Read, "app", true),
            (&anon, Action::Read, "private/public-docs", true),
            (&dana, Action::Read, "private/public-docs", false),
            (&root, Action::Delete, "private/x", true),
            (&otto, Action::Delete, "app", true),
        ];
        for (who, action, repo, expected) in cases {
            assert_eq!(
                ac.allows(who, action, repo),
                expected,
                "{who:?} {action:?} {repo}"
            );
        }
        assert_eq!(dana.groups, vec!["devs".to_owned()]);
        assert!(ac.allows_anywhere(&anon, Action::Read));
        assert!(!ac.allows_anywhere(&anon, Action::Create));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<AccessControl>(
            r#"{"repositories":{"**":{"anonymousPolicy":["read"],"defaultPolcy":["read"]}}}"#,
        )
        .expect_err("typo");
        assert!(
            err.to_string().contains("unknown field `defaultPolcy`"),
            "{err}"
        );
        let err = serde_json::from_str::<AccessControl>(
            r#"{"repositories":{"**":{"anonymousPolicy":["write"]}}}"#,
        )
        .expect_err("bad action");
        assert!(err.to_string().contains("unknown variant `write`"), "{err}");
    }
}
