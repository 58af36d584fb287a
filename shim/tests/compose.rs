//! A composed HTTP component through the shim, as kubelet runs it: `http-greet` (an HTTP
//! handler importing `acme:greet/greeter`) with `greet-plug` plugged in answers in the
//! pod's network namespace with what the plug computed.

use super::*;
use crate::cri::{Node, container, get_inside};
use crate::support::cri::pod_netns;
use crate::support::images::push_artifact;

fn a_composed_http_component_serves_through_the_shim(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let wasm = std::fs::read(fixtures().join("composed-http.wasm")).unwrap();
    let composed = push_artifact(&node.registry, "composed-http", &wasm);
    node.pull(&composed).unwrap();
    let pod = node.new_pod(&[("wasmoci.dev/timeout", "5s")], false);
    let mut cri = node.cri.clone();
    let status = node.rt.block_on(async {
        let id = cri
            .create(&pod, &container("http", &composed, &["composed-http.wasm"]))
            .await
            .unwrap();
        cri.start(&id).await.unwrap();
        cri.pod_status(&pod).await.unwrap()
    });
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let netns = pod_netns(&info);
    let response = get_inside(&netns, 8080).expect("the composed component answers");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert_eq!(body(&response), "greeting: 42\n", "{response}");
}
on_each_containerd!(a_composed_http_component_serves_through_the_shim);

/// The body of a chunked HTTP/1.1 response.
fn body(response: &str) -> String {
    let mut rest = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}
