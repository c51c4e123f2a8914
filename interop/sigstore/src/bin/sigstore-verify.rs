//! `sigstore-verify --key cosign.pub [--allow-http-registry] IMAGE`: verifies
//! the cosign signatures of one image with sigstore-rs (the `sigstore`
//! crate's cosign client) and a public key, without Rekor, as `cosign verify
//! --key cosign.pub --insecure-ignore-tlog IMAGE` does.
//!
//! It is the peer `cargo xtask bench sign` runs once per image against
//! `oci-verify`, so it does what a one-image verifier must and nothing more:
//! resolve the image to its digest, read the `sha256-<hex>.sig` layers
//! (sigstore-rs checks each payload's digest and its claimed image digest),
//! and require one layer that verifies with the key. Exit codes follow
//! cosign's: 0 verified, 12 no matching signature, 1 any other failure,
//! 2 usage.

use std::process::ExitCode;

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, ClientBuilder, CosignCapabilities};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

const USAGE: &str = "usage: sigstore-verify --key cosign.pub [--allow-http-registry] HOST/REPO[:TAG|@DIGEST]";

struct Args {
    key: String,
    http: bool,
    image: String,
}

fn parse_args() -> Result<Args, String> {
    let mut key = None;
    let mut http = false;
    let mut image = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--key" => key = Some(args.next().ok_or("--key needs a file")?),
            "--allow-http-registry" => http = true,
            other if other.starts_with('-') => return Err(format!("unknown flag {other}")),
            other if image.is_none() => image = Some(other.to_owned()),
            other => return Err(format!("one image only, not also {other}")),
        }
    }
    Ok(Args {
        key: key.ok_or("--key is required")?,
        http,
        image: image.ok_or("an image is required")?,
    })
}

async fn verify(args: &Args) -> Result<String, (u8, String)> {
    let fail = |e: &dyn std::fmt::Display| (1, e.to_string());
    let pem = std::fs::read(&args.key).map_err(|e| (1, format!("{}: {e}", args.key)))?;
    let verifier = PublicKeyVerifier::new(&pem, &SigningScheme::ECDSA_P256_SHA256_ASN1)
        .map_err(|e| fail(&e))?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    let image: OciReference = args.image.parse().map_err(|e| fail(&e))?;
    let protocol = if args.http {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol,
            ..Default::default()
        })
        .build()
        .map_err(|e| fail(&e))?;
    let (cosign_image, digest) = client
        .triangulate(&image, &Auth::Anonymous)
        .await
        .map_err(|e| fail(&e))?;
    let layers = client
        .trusted_signature_layers(&Auth::Anonymous, &digest, &cosign_image)
        .await
        .map_err(|e| fail(&e))?;
    verify_constraints(&layers, constraints.iter())
        .map_err(|e| (12, format!("no matching signatures: {e}")))?;
    Ok(digest)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sigstore-verify: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sigstore-verify: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(verify(&args)) {
        Ok(digest) => {
            println!("{} {digest}: verified", args.image);
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("sigstore-verify: {}: {message}", args.image);
            ExitCode::from(code)
        }
    }
}
