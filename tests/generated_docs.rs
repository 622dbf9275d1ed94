//! The documents generated from the code are current: the socket's
//! reference (`docs/socket-api.md`, from `core::command`) and the MQTT API
//! (`docs/mqtt-api.asyncapi.yaml`). Regenerate both with
//! `DIEMCAU_WRITE_DOCS=1 cargo test --test generated_docs`.

use std::path::Path;

fn check(file: &str, want: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    if std::env::var_os("DIEMCAU_WRITE_DOCS").is_some() {
        std::fs::write(&path, want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{file} is out of date; regenerate with DIEMCAU_WRITE_DOCS=1 cargo test --test generated_docs"
    );
}

#[test]
fn socket_reference_is_current() {
    check("docs/socket-api.md", &diemcau::api::reference());
}

#[test]
fn asyncapi_document_is_current() {
    check(
        "docs/mqtt-api.asyncapi.yaml",
        &diemcau::mqtt::asyncapi::document(),
    );
}
