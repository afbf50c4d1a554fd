//! Service identities authenticated by TLS client certificates: real handshakes against the
//! server over HTTPS, with CAs and certificates generated here (rcgen). A certificate counts only
//! if the org's own CA issued it for client authentication, it is in date, and its URI SAN names
//! an active service identity of that org.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Backend, TestApp, app};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ca { cert: p.self_signed(&key).unwrap(), key }
}

/// A client certificate (PEM cert + key) for `uri`, issued by `ca`.
fn client_cert(ca: &Ca, uri: &str, tweak: impl FnOnce(&mut CertificateParams)) -> String {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "service");
    p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    tweak(&mut p);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

struct Tls {
    base: String,
    server_ca: String,
    _dir: tempfile::TempDir,
}

/// Serves `t` over HTTPS with a server certificate for 127.0.0.1.
async fn serve_tls(t: &TestApp) -> Tls {
    let server_ca = ca("test server CA");
    let key = KeyPair::generate().unwrap();
    let p = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = p.signed_by(&key, &server_ca.cert, &server_ca.key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let config =
        gatehouse_server::tls::server_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let router = t.router.clone();
    tokio::spawn(async move {
        gatehouse_server::serve_tls(listener, config, router, std::future::pending()).await.unwrap();
    });
    Tls { base, server_ca: server_ca.cert.pem(), _dir: dir }
}

fn client(tls: &Tls, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(tls.server_ca.as_bytes()).unwrap());
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let res = c.get(url).send().await.unwrap();
    let s = res.status().as_u16();
    (s, res.json().await.unwrap_or(Value::Null))
}

const ETL: &str = "spiffe://gatehouse/org/operator/service/etl";

async fn client_certificates_authenticate_service_identities(b: Backend) {
    let t = app(b).await;
    let (s, etl) =
        t.post("/api/v1/principals", t.admin(), json!({"kind": "service", "name": "etl", "max_scope": "write"})).await;
    assert_eq!(s.as_u16(), 201, "{etl}");
    let org_ca = ca("operator client CA");
    let tls = serve_tls(&t).await;
    let whoami = format!("{}/api/v1/whoami", tls.base);
    let good = client_cert(&org_ca, ETL, |_| {});

    // Before the org trusts a CA, no certificate authenticates.
    let (s, v) = get(&client(&tls, Some(&good)), &whoami).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("no client CA"), "{v}");

    // A CA that is not a CA, or not PEM, is refused.
    let leaf_only = good.split("-----BEGIN PRIVATE KEY-----").next().unwrap().to_owned();
    for pem in [leaf_only.as_str(), "not pem"] {
        let (s, v) =
            t.call(axum::http::Method::PUT, "/api/v1/client-ca", Some(t.admin()), Some(json!({"pem": pem}))).await;
        assert_eq!(s.as_u16(), 422, "{v}");
    }
    let (s, v) = t
        .call(axum::http::Method::PUT, "/api/v1/client-ca", Some(t.admin()), Some(json!({"pem": org_ca.cert.pem()})))
        .await;
    assert_eq!(s.as_u16(), 200, "{v}");

    // The service authenticates with its certificate, and acts under its roles.
    let c = client(&tls, Some(&good));
    let (s, me) = get(&c, &whoami).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["principal"]["name"], "etl");
    assert_eq!(me["credential"], "mtls");
    let res = c.post(format!("{}/api/v1/apps", tls.base)).json(&json!({"name": "etl-app"})).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let (_, events) = t.get("/api/v1/audit/events?action=app.create", t.admin()).await;
    assert_eq!(events[0]["actor"]["name"], "etl", "{events}");

    // Tokens still work over HTTPS; no credential at all does not.
    let res = client(&tls, None).get(&whoami).bearer_auth(t.admin()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (s, _) = get(&client(&tls, None), &whoami).await;
    assert_eq!(s, 401);

    // Refused: another CA's certificate for the same name; an expired one; one for server
    // authentication only; one naming a user; one naming an unknown service; one with no
    // Gatehouse URI SAN.
    let rogue = ca("rogue CA");
    let cases = [
        ("rogue CA", client_cert(&rogue, ETL, |_| {}), "refused"),
        (
            "expired",
            client_cert(&org_ca, ETL, |p| {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }),
            "refused",
        ),
        (
            "server-auth only",
            client_cert(&org_ca, ETL, |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]),
            "refused",
        ),
        (
            "a user",
            client_cert(&org_ca, "spiffe://gatehouse/org/operator/service/admin@operator.example", |_| {}),
            "not a service identity",
        ),
        (
            "unknown service",
            client_cert(&org_ca, "spiffe://gatehouse/org/operator/service/ghost", |_| {}),
            "not a service identity",
        ),
        ("no SPIFFE ID", client_cert(&org_ca, "https://example.com/etl", |_| {}), "exactly one URI SAN"),
    ];
    for (what, pem, needle) in &cases {
        let (s, v) = get(&client(&tls, Some(pem)), &whoami).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(needle), "{what}: {v}");
    }

    // Tenants: org `other` has its own service `etl` and its own CA. The operator's CA cannot
    // issue for it; other's CA can.
    let (s, org) = t
        .post(
            "/api/v1/orgs",
            t.admin(),
            json!({"name": "other", "display_name": "Other", "admin_email": "root@other.example"}),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{org}");
    let other_admin = org["token"]["secret"].as_str().unwrap().to_owned();
    t.post("/api/v1/principals", &other_admin, json!({"kind": "service", "name": "etl", "max_scope": "read"})).await;
    let other_ca = ca("other client CA");
    let (s, _) = t
        .call(
            axum::http::Method::PUT,
            "/api/v1/client-ca",
            Some(&other_admin),
            Some(json!({"pem": other_ca.cert.pem()})),
        )
        .await;
    assert_eq!(s.as_u16(), 200);
    let other_etl = "spiffe://gatehouse/org/other/service/etl";
    let (s, v) = get(&client(&tls, Some(&client_cert(&org_ca, other_etl, |_| {}))), &whoami).await;
    assert_eq!(s, 401, "the operator's CA issued an identity of another org: {v}");
    let (s, v) = get(&client(&tls, Some(&client_cert(&other_ca, other_etl, |_| {}))), &whoami).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["org"]["name"], "other");

    // Deactivation refuses the certificate at once; so does removing the CA.
    let (s, _) = t
        .call(
            axum::http::Method::PATCH,
            &format!("/api/v1/principals/{}", etl["id"].as_str().unwrap()),
            Some(t.admin()),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(s.as_u16(), 200);
    let (s, _) = get(&c, &whoami).await;
    assert_eq!(s, 401);
    let (s, _) = t.call(axum::http::Method::DELETE, "/api/v1/client-ca", Some(&other_admin), None).await;
    assert_eq!(s.as_u16(), 204);
    let (s, _) = get(&client(&tls, Some(&client_cert(&other_ca, other_etl, |_| {}))), &whoami).await;
    assert_eq!(s, 401);
    // The CA change is audited; so are the two refused attempts.
    let (_, events) = t.get("/api/v1/audit/events?action=mtls.ca.set", t.admin()).await;
    let outcomes: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "failed").count(), 2, "{outcomes:?}");
}

both_backends!(client_certificates_authenticate_service_identities);
