//! SIEM export against real receivers on loopback: NDJSON files with rotation, an HTTP endpoint
//! speaking the Splunk HEC protocol (busy answers included), and a syslog receiver over TLS; and
//! OCSF events checked against the required attributes of each class used.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use common::{Backend, TestApp, app, app_with};
use gatehouse_server::Config;
use gatehouse_server::config::{ExportFormat, ExportSettings, SinkSettings};
use gatehouse_server::export::{export_once, to_ocsf};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

both_backends!(
    ocsf_events_carry_each_class_required_fields,
    ndjson_files_rotate_and_resume,
    splunk_hec_retries_until_accepted,
    syslog_over_tls_with_octet_counting
);

/// Some activity of every kind: changes, a refusal, token and principal management.
async fn activity(t: &TestApp) {
    t.post("/api/v1/folders", t.admin(), json!({"name": "finance"})).await;
    t.create_app("ledger").await;
    let (_, p) =
        t.post("/api/v1/principals", t.admin(), json!({"kind": "service", "name": "etl", "max_scope": "push"})).await;
    t.post("/api/v1/tokens", t.admin(), json!({"name": "ci", "scope": "push", "principal_id": p["id"]})).await;
    let (s, _) = t.get("/api/v1/apps", "gat_wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

fn required(e: &Value, path: &str) {
    let mut v = e;
    for part in path.split('.') {
        v = &v[part];
    }
    assert!(!v.is_null(), "OCSF class {} lacks required `{path}`: {e}", e["class_uid"]);
}

async fn ocsf_events_carry_each_class_required_fields(b: Backend) {
    let t = app(b).await;
    activity(&t).await;
    let records = t.store.audit_range(&t.boot.org.id, 1, u64::MAX, 1000).await.unwrap();
    let mut classes = std::collections::BTreeSet::new();
    for r in &records {
        let e = to_ocsf(r);
        // Base event (OCSF 1.3.0): classification, occurrence and metadata.
        for f in [
            "activity_id",
            "category_uid",
            "class_uid",
            "severity_id",
            "time",
            "type_uid",
            "metadata.version",
            "metadata.product.name",
        ] {
            required(&e, f);
        }
        let class = e["class_uid"].as_u64().unwrap();
        assert_eq!(e["type_uid"].as_u64().unwrap(), class * 100 + e["activity_id"].as_u64().unwrap());
        assert_eq!(e["category_uid"].as_u64().unwrap(), class / 1000);
        assert_eq!(e["metadata"]["sequence"].as_u64(), Some(r.seq));
        assert_eq!(e["unmapped"]["integrity"]["hash"].as_str(), Some(r.hash.as_str()));
        assert_eq!(e["unmapped"]["integrity"]["prev_hash"].as_str(), Some(r.prev_hash.as_str()));
        match class {
            6003 => ["actor", "api.operation", "src_endpoint"].iter().for_each(|f| required(&e, f)),
            3002 => {
                required(&e, "user");
                assert!(!e["service"].is_null() || !e["dst_endpoint"].is_null(), "3002 needs service or dst_endpoint");
                assert_eq!(e["status_id"], 2, "{e}");
            }
            3001 => required(&e, "user"),
            3005 => ["user", "privileges"].iter().for_each(|f| required(&e, f)),
            other => panic!("unexpected class {other}"),
        }
        classes.insert(class);
    }
    assert_eq!(classes.into_iter().collect::<Vec<_>>(), [3001, 3002, 3005, 6003]);
}

fn ndjson(dir: &std::path::Path, rotate: u64) -> ExportSettings {
    ExportSettings {
        name: "files".into(),
        org: None,
        sink: SinkSettings::Ndjson { dir: dir.to_owned(), rotate_bytes: rotate },
        format: ExportFormat::Ocsf,
    }
}

fn exported_seqs(dir: &std::path::Path) -> Vec<u64> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut seqs = Vec::new();
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["unmapped"]["org_id"] != Value::Null {
                seqs.push(v["metadata"]["sequence"].as_u64().unwrap());
            }
        }
    }
    seqs
}

async fn ndjson_files_rotate_and_resume(b: Backend) {
    let out = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.exports.push(ndjson(out.path(), 2000));
    let t = app_with(b, config).await;
    activity(&t).await;
    let export = ndjson(out.path(), 2000);
    let n = export_once(&t.store, &export).await.unwrap();
    let head = t.store.audit_head(&t.boot.org.id).await.unwrap().seq;
    assert_eq!(n, head);
    assert_eq!(exported_seqs(out.path()), (1..=head).collect::<Vec<_>>());
    assert!(std::fs::read_dir(out.path()).unwrap().count() > 1, "files rotate at 2000 bytes");
    // Nothing new: nothing sent again. New records: only those.
    assert_eq!(export_once(&t.store, &export).await.unwrap(), 0);
    t.post("/api/v1/folders", t.admin(), json!({"name": "more"})).await;
    assert_eq!(export_once(&t.store, &export).await.unwrap(), 1);
    assert_eq!(exported_seqs(out.path()), (1..=head + 1).collect::<Vec<_>>());
    let (s, health) = t.get("/api/v1/audit/exports", t.admin()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(health[0]["name"], "files");
    assert_eq!(health[0]["delivered_seq"].as_u64(), Some(head + 1));
    assert_eq!(health[0]["lag"], 0);
    assert!(health[0]["last_error"].is_null());
}

#[derive(Default)]
struct Hec {
    busy_left: usize,
    events: Vec<Value>,
    bad_auth: usize,
}

/// A loopback HTTP server speaking the Splunk HEC event protocol.
async fn hec_server(busy: usize) -> (String, Arc<Mutex<Hec>>) {
    let state = Arc::new(Mutex::new(Hec { busy_left: busy, ..Default::default() }));
    let s = state.clone();
    let app = axum::Router::new().route(
        "/services/collector/event",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut st = s.lock().unwrap();
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Splunk hec-token-123") {
                    st.bad_auth += 1;
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"text": "Invalid authorization", "code": 3})));
                }
                if st.busy_left > 0 {
                    st.busy_left -= 1;
                    return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"text": "Server is busy", "code": 9})));
                }
                // Concatenated JSON objects, as HEC accepts them.
                let events: Vec<Value> =
                    serde_json::Deserializer::from_slice(&body).into_iter::<Value>().map(|v| v.unwrap()).collect();
                for e in &events {
                    assert!(e["time"].is_number() && e["event"].is_object() && e["sourcetype"].is_string(), "{e}");
                }
                st.events.extend(events);
                (StatusCode::OK, axum::Json(json!({"text": "Success", "code": 0})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

async fn splunk_hec_retries_until_accepted(b: Backend) {
    let (url, hec) = hec_server(2).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("hec-token");
    std::fs::write(&token_file, "hec-token-123\n").unwrap();
    let export = ExportSettings {
        name: "splunk".into(),
        org: Some("operator".into()),
        sink: SinkSettings::SplunkHec { url, token_file, ca_file: None },
        format: ExportFormat::Ocsf,
    };
    let mut config = Config::default();
    config.audit.exports.push(export.clone());
    let t = app_with(b, config).await;
    activity(&t).await;
    // Busy twice: each attempt fails, is recorded, and moves nothing.
    for _ in 0..2 {
        let err = export_once(&t.store, &export).await.unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
    }
    let (_, health) = t.get("/api/v1/audit/exports", t.admin()).await;
    assert!(health[0]["last_error"].as_str().unwrap().contains("busy"), "{health}");
    assert_eq!(health[0]["delivered_seq"], 0);
    assert!(health[0]["lag"].as_u64().unwrap() > 0);
    let sent = export_once(&t.store, &export).await.unwrap();
    let head = t.store.audit_head(&t.boot.org.id).await.unwrap().seq;
    assert_eq!(sent, head);
    let (seqs, bad_auth) = {
        let st = hec.lock().unwrap();
        let seqs: Vec<u64> = st.events.iter().map(|e| e["event"]["metadata"]["sequence"].as_u64().unwrap()).collect();
        (seqs, st.bad_auth)
    };
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "in order, no gaps, no duplicates");
    assert_eq!(bad_auth, 0);
    let (_, health) = t.get("/api/v1/audit/exports", t.admin()).await;
    assert!(health[0]["last_error"].is_null(), "{health}");
    assert_eq!(health[0]["lag"], 0);
    // The token never shows in health or errors.
    assert!(!health.to_string().contains("hec-token-123"));
}

async fn syslog_over_tls_with_octet_counting(b: Backend) {
    // A CA and a server certificate for localhost, made here.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let srv_key = rcgen::KeyPair::generate().unwrap();
    let srv =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&srv_key, &ca, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![srv.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.unwrap();
            sink.lock().unwrap().extend(buf);
        }
    });
    let export = ExportSettings {
        name: "syslog".into(),
        org: None,
        sink: SinkSettings::Syslog { address: format!("localhost:{port}"), ca_file, server_name: None },
        format: ExportFormat::Native,
    };
    let t = app(b).await;
    activity(&t).await;
    let sent = export_once(&t.store, &export).await.unwrap();
    // RFC 5425 frames: "LEN SP MSG", each MSG an RFC 5424 line.
    let data = received.lock().unwrap().clone();
    let mut rest = data.as_slice();
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let sp = rest.iter().position(|b| *b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        messages.push(String::from_utf8(rest[sp + 1..sp + 1 + len].to_vec()).unwrap());
        rest = &rest[sp + 1 + len..];
    }
    assert_eq!(messages.len() as u64, sent);
    for (i, m) in messages.iter().enumerate() {
        assert!(m.starts_with("<110>1 ") || m.starts_with("<109>1 ") || m.starts_with("<108>1 "), "{m}");
        assert!(m.contains(&format!("seq=\"{}\"", i + 1)), "{m}");
        let json = &m[m.find("] {").unwrap() + 2..];
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["seq"].as_u64(), Some(i as u64 + 1));
    }
    // A wrong CA: the handshake fails and the cursor stays.
    let other = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(dir.path().join("other.pem"), p.self_signed(&other).unwrap().pem()).unwrap();
    t.post("/api/v1/folders", t.admin(), json!({"name": "later"})).await;
    let wrong = ExportSettings {
        sink: SinkSettings::Syslog {
            address: format!("localhost:{port}"),
            ca_file: dir.path().join("other.pem"),
            server_name: None,
        },
        ..export.clone()
    };
    assert!(export_once(&t.store, &wrong).await.unwrap_err().to_string().contains("TLS"));
    assert_eq!(t.store.export_state(&t.boot.org.id, "syslog").await.unwrap().seq, sent);
}
