//! The registry client (OCI Distribution Spec v1.1, as distribution, zot,
//! Docker Hub and the cloud registries serve it): endpoints and TLS,
//! credentials and auth, retries, manifests, blobs, tags and referrers (with
//! the referrers tag schema where a registry has no referrers API).
//!
//! One [`Client`] per side of a copy holds a connection pool, the endpoint
//! found for each registry and a token cache; [`Client::repository`] hands out
//! cheap [`Repository`] handles on which every operation lives:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ocikit::registry::RegistryError> {
//! use ocikit::registry::{Client, ClientOptions};
//! let client = Client::new(ClientOptions { creds_flag: "--src-creds", ..Default::default() })?;
//! let repo = client.repository("127.0.0.1:5000", "app");
//! let manifest = repo.get_manifest("latest").await?;
//! println!("{} {}", manifest.digest, manifest.media_type);
//! # Ok(()) }
//! ```
//!
//! Uploads: [`Repository::put_blob`] takes one reader; small blobs (up to
//! [`MONOLITHIC_LIMIT`]) are sent in one retryable `PUT`, large ones streamed
//! in one `PATCH` that is not retried. [`Repository::put_blob_with`] takes a
//! function that reopens the source instead, and retries streamed uploads
//! too. Downloads verify the digest while streaming.

mod auth;
mod blobs;
mod client;
mod credentials;
mod error;
mod manifests;
mod referrers;
mod retry;
mod tls;

pub use auth::{parse_challenge, Access, Challenge};
pub use blobs::{BlobReader, VerifyingReader, MONOLITHIC_LIMIT};
pub use client::{Client, ClientOptions, Repository};
pub use credentials::{
    lookup as lookup_credentials, CredentialSource, Credentials, Environment, Found,
};
pub use error::{AuthFailure, RegistryError};
pub use manifests::FetchedManifest;
pub use referrers::{
    add_referrer, parse_referrers_index, referrers_tag, Referrers, ReferrersSource,
};
pub use retry::RetryPolicy;
pub use tls::{default_certs_d, is_loopback};
