//! Content discovery: the tag list and the catalog (sorted, with `n`/`last`
//! pagination and a `Link` to the next page) and the referrers API.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{query_param, HandlerResult, RegistryError, Shared};
use crate::digest::Digest;
use crate::manifest;
use crate::storage::Storage;

/// One page of a sorted list: the items after `last`, at most `n`, and
/// whether more follow.
pub(crate) fn page(
    items: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
) -> (Vec<String>, bool) {
    let mut items: Vec<String> = match last {
        Some(last) => items.into_iter().filter(|t| t.as_str() > last).collect(),
        None => items,
    };
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            (items, n > 0)
        }
        _ => (items, false),
    }
}

fn pagination(uri: &Uri) -> Result<(Option<usize>, Option<String>), RegistryError> {
    let n = match query_param(uri, "n") {
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            RegistryError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n={n:?} is not a number of entries"),
            )
        })?),
        None => None,
    };
    Ok((n, query_param(uri, "last")))
}

fn json_page(body: serde_json::Value, next: Option<String>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

fn next_link(path: &str, n: Option<usize>, items: &[String], more: bool) -> Option<String> {
    let (true, Some(n), Some(last)) = (more, n, items.last()) else {
        return None;
    };
    let last: String = url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
    Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""))
}

/// GET `/v2/<name>/tags/list`.
pub(super) async fn tags<S: Storage>(app: &Shared<S>, name: &str, uri: &Uri) -> HandlerResult {
    let (n, last) = pagination(uri)?;
    let Some(tags) = app.storage.tags(name).await? else {
        return Err(RegistryError::name_unknown(name));
    };
    let (tags, more) = page(tags, n, last.as_deref());
    let link = next_link(&format!("/v2/{name}/tags/list"), n, &tags, more);
    Ok(json_page(
        serde_json::json!({"name": name, "tags": tags}),
        link,
    ))
}

/// GET `/v2/_catalog`: the repositories the caller may read.
pub(super) async fn catalog<S: Storage>(
    app: &Shared<S>,
    uri: &Uri,
    may_read: &(dyn Fn(&str) -> bool + Sync),
) -> HandlerResult {
    let (n, last) = pagination(uri)?;
    let mut repositories = app.storage.repositories().await?;
    repositories.retain(|name| may_read(name));
    let (repositories, more) = page(repositories, n, last.as_deref());
    let link = next_link("/v2/_catalog", n, &repositories, more);
    Ok(json_page(
        serde_json::json!({"repositories": repositories}),
        link,
    ))
}

/// GET `/v2/<name>/referrers/<digest>[?artifactType=]`: always an image
/// index, empty when nothing refers to the digest.
pub(super) async fn referrers<S: Storage>(
    app: &Shared<S>,
    name: &str,
    digest: &str,
    uri: &Uri,
) -> HandlerResult {
    let digest: Digest = digest
        .parse()
        .map_err(|e: crate::digest::DigestError| RegistryError::digest_invalid(e.to_string()))?;
    let mut found = app.storage.referrers(name, &digest).await?;
    let filter = query_param(uri, "artifactType");
    if let Some(filter) = &filter {
        found.retain(|d| d.artifact_type.as_deref() == Some(filter.as_str()));
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": found,
    });
    let mut response = (
        [(header::CONTENT_TYPE, manifest::OCI_INDEX)],
        body.to_string(),
    )
        .into_response();
    if filter.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let all = || ["a", "b", "c", "d"].map(String::from).to_vec();
        type Case = (
            Option<usize>,
            Option<&'static str>,
            &'static [&'static str],
            bool,
        );
        let cases: [Case; 6] = [
            (None, None, &["a", "b", "c", "d"], false),
            (Some(2), None, &["a", "b"], true),
            (Some(2), Some("b"), &["c", "d"], false),
            (Some(4), None, &["a", "b", "c", "d"], false),
            (None, Some("bb"), &["c", "d"], false),
            (Some(0), None, &[], false),
        ];
        for (n, last, want, more) in cases {
            let (got, got_more) = page(all(), n, last);
            assert_eq!(got, want, "n={n:?} last={last:?}");
            assert_eq!(got_more, more, "n={n:?} last={last:?}");
        }
        assert_eq!(
            next_link("/v2/_catalog", Some(2), &["a".into(), "b/c".into()], true).as_deref(),
            Some("</v2/_catalog?n=2&last=b%2Fc>; rel=\"next\"")
        );
    }
}
