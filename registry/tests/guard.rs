//! A client told where it may connect (the shim's direct pulls) keeps to it on every
//! request: a registry's redirect to an address the filter refuses goes nowhere.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::Duration;

use wasmoci_registry::client::{AddressFilter, Client, ClientOptions};
use wasmoci_registry::{Layout, Reference};
use wasmoci_testdata::fake::{FakeRegistry, FakeResponse};

use super::artifact;

#[test]
fn a_redirect_to_a_refused_address_is_not_followed() {
    // What the redirect points at: 127.0.0.2, which the filter refuses. It must never
    // see a connection.
    let forbidden = TcpListener::bind("127.0.0.2:0").unwrap();
    forbidden.set_nonblocking(true).unwrap();
    let target = forbidden.local_addr().unwrap();
    let a = artifact();
    let (manifest, config, config_digest) = (
        a.manifest.clone(),
        a.config.clone(),
        a.config_digest.clone(),
    );
    let registry = FakeRegistry::start(move |req| {
        if req.path.contains("/manifests/") {
            FakeResponse::new(200, manifest.clone())
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        } else if req.path.ends_with(&config_digest) {
            FakeResponse::new(200, config.clone())
        } else {
            FakeResponse::new(307, Vec::new()).header("location", &format!("http://{target}/layer"))
        }
    });
    let refused = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let client = Client::new(ClientOptions {
        only_addresses: Some(AddressFilter::new(move |ip| {
            (ip == refused).then(|| "refused by this test".to_owned())
        })),
        retry_budget: Duration::from_secs(1),
        ..ClientOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reference: Reference = format!("{}/demo/app:1", registry.addr).parse().unwrap();
    let err = client
        .pull(
            &reference,
            &Layout::at(dir.path().join("layout")),
            Some("app:1"),
        )
        .unwrap_err();
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err).map_or(String::new(), |s| s.to_string())
    );
    assert!(text.contains("not connecting"), "{text}");
    assert!(
        forbidden.accept().is_err(),
        "the refused address was connected to"
    );
}
