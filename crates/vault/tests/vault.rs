//! The vault on both databases and both KMS backends: the local key file and a real PKCS#11
//! token (SoftHSM2, set up by `scripts/test`).

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gatehouse_core::{OrgId, PrincipalId, Sensitivity};
use gatehouse_store::testing::ctx;
use gatehouse_store::{NewApp, NewOrg, Store, StoreError};
use gatehouse_vault::kms::local::LocalKeyFile;
use gatehouse_vault::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use gatehouse_vault::kms::{Kms, KmsRegistry};
use gatehouse_vault::{Scope, Vault, VaultConfig, VaultError};

/// One PKCS#11 connection per test process, as in the server.
fn hsm() -> Arc<Pkcs11Kms> {
    static HSM: OnceLock<Arc<Pkcs11Kms>> = OnceLock::new();
    HSM.get_or_init(|| {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set; run the tests with scripts/test, which sets up SoftHSM2")
            })
        };
        Arc::new(Pkcs11Kms::new(Pkcs11Config {
            library: var("GATEHOUSE_TEST_PKCS11_LIB").into(),
            token_label: var("GATEHOUSE_TEST_PKCS11_TOKEN"),
            pin: var("GATEHOUSE_TEST_PKCS11_PIN").into(),
        }))
    })
    .clone()
}

struct Env {
    store: Store,
    vault: Vault,
    registry: KmsRegistry,
    config: VaultConfig,
    _dirs: Vec<tempfile::TempDir>,
}

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy)]
enum Backend {
    Local,
    Pkcs11,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", gatehouse_core::SecretId::generate().as_str()[20..].to_owned())
}

async fn env(db: Db, backend: Backend, ttl: Duration) -> Env {
    let mut dirs = Vec::new();
    let store = match db {
        Db::Sqlite => {
            let (s, d) = gatehouse_store::testing::sqlite().await;
            dirs.push(d);
            s
        }
        Db::Postgres => gatehouse_store::testing::postgres().await,
    };
    let keydir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalKeyFile::open_or_create(&keydir.path().join("kek.json"), "default").unwrap());
    dirs.push(keydir);
    let registry = KmsRegistry::default().with("local", local).with("pkcs11", hsm());
    let (default_kek, org_key_backend) = match backend {
        Backend::Local => ("local:default".to_owned(), "local".to_owned()),
        Backend::Pkcs11 => {
            let name = unique("default");
            hsm().create_key(&name).unwrap();
            (format!("pkcs11:{name}"), "pkcs11".to_owned())
        }
    };
    let config = VaultConfig { default_kek, org_key_backend, dek_cache_ttl: ttl };
    let vault = Vault::new(store.clone(), registry.clone(), config.clone());
    Env { store, vault, registry, config, _dirs: dirs }
}

async fn org(store: &Store, name: &str) -> (OrgId, PrincipalId) {
    let b = store
        .create_org(
            NewOrg {
                name: name.into(),
                display_name: name.into(),
                admin_email: format!("admin@{name}.example"),
                admin_token_ttl: None,
            },
            &gatehouse_store::testing::outside_ctx(),
        )
        .await
        .unwrap();
    (b.org.id, b.admin.id)
}

macro_rules! matrix {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test(flavor = "multi_thread")]
                async fn sqlite_local() { super::$name(Db::Sqlite, Backend::Local).await }
                #[tokio::test(flavor = "multi_thread")]
                async fn sqlite_pkcs11() { super::$name(Db::Sqlite, Backend::Pkcs11).await }
                #[tokio::test(flavor = "multi_thread")]
                async fn postgres_local() { super::$name(Db::Postgres, Backend::Local).await }
                #[tokio::test(flavor = "multi_thread")]
                async fn postgres_pkcs11() { super::$name(Db::Postgres, Backend::Pkcs11).await }
            }
        )*
    };
}

matrix!(
    sealed_blobs,
    round_trip,
    tampering_is_detected,
    scopes_resolve_by_precedence,
    kek_rotation_survives_a_crash,
    crypto_shredding_one_org
);

async fn sealed_blobs(db: Db, b: Backend) {
    let e = env(db, b, Duration::ZERO).await;
    let (a, _admin) = org(&e.store, "alpha").await;
    let (other, _) = org(&e.store, "beta").await;
    let blob = e.vault.seal_blob(&a, "integration-credential:salesforce", b"client-secret-canary-9").await.unwrap();
    assert!(!blob.windows(8).any(|w| w == b"canary-9"), "the blob holds the plaintext");
    assert_eq!(
        e.vault.open_blob(&a, "integration-credential:salesforce", &blob).await.unwrap().expose(),
        b"client-secret-canary-9"
    );
    // Another purpose or another org cannot open it.
    assert!(matches!(e.vault.open_blob(&a, "audit-hmac-key", &blob).await, Err(VaultError::Integrity)));
    assert!(matches!(
        e.vault.open_blob(&other, "integration-credential:salesforce", &blob).await,
        Err(VaultError::Integrity)
    ));
    let mut flipped = blob.clone();
    let n = flipped.len() - 1;
    flipped[n] ^= 1;
    assert!(matches!(
        e.vault.open_blob(&a, "integration-credential:salesforce", &flipped).await,
        Err(VaultError::Integrity)
    ));
    // After a rotation the old blob still opens (it names its KEK) and reseals under the new key;
    // destroying the org's key shreds the resealed blob.
    e.vault.rotate_org_key(&a, None, &ctx(&a)).await.unwrap();
    let resealed = e.vault.reseal_blob(&a, "integration-credential:salesforce", &blob).await.unwrap();
    e.vault.destroy_org_key(&a, &ctx(&a)).await.unwrap();
    assert!(matches!(
        e.vault.open_blob(&a, "integration-credential:salesforce", &resealed).await,
        Err(VaultError::KeyDestroyed)
    ));
}

async fn round_trip(db: Db, b: Backend) {
    let e = env(db, b, Duration::from_secs(60)).await;
    let (o, admin) = org(&e.store, "acme").await;
    let m1 =
        e.vault.put(&o, &Scope::Org, "STRIPE_KEY", b"sk_live_canary_0001", &admin, Some(90), &ctx(&o)).await.unwrap();
    assert_eq!(m1.current_version, 1);
    assert_eq!(e.vault.read(&o, &m1.id, "test").await.unwrap().expose(), b"sk_live_canary_0001");
    let m2 = e.vault.put(&o, &Scope::Org, "STRIPE_KEY", b"sk_live_canary_0002", &admin, None, &ctx(&o)).await.unwrap();
    assert_eq!((m2.id.clone(), m2.current_version, m2.rotate_every_days), (m1.id.clone(), 2, Some(90)));
    assert_eq!(e.vault.read(&o, &m1.id, "test").await.unwrap().expose(), b"sk_live_canary_0002");
    let listed = e.vault.list(&o, &gatehouse_store::Page::all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
    assert!(format!("{:?}", e.vault.read(&o, &m1.id, "test").await.unwrap()).contains("****"));
    // Bad input.
    assert!(matches!(
        e.vault.put(&o, &Scope::Org, "bad name", b"x", &admin, None, &ctx(&o)).await,
        Err(VaultError::Invalid(_))
    ));
    assert!(matches!(
        e.vault.put(&o, &Scope::Org, "EMPTY", b"", &admin, None, &ctx(&o)).await,
        Err(VaultError::Invalid(_))
    ));
    e.vault.delete(&o, &m1.id, &ctx(&o)).await.unwrap();
    assert!(matches!(e.vault.read(&o, &m1.id, "test").await, Err(VaultError::Store(StoreError::NotFound { .. }))));
    // Another org cannot read it by id.
    let m3 = e.vault.put(&o, &Scope::Org, "DB_PASSWORD", b"pw-canary-123", &admin, None, &ctx(&o)).await.unwrap();
    let (other, _) = org(&e.store, "other").await;
    assert!(matches!(e.vault.read(&other, &m3.id, "test").await, Err(VaultError::Store(StoreError::NotFound { .. }))));
}

async fn tampering_is_detected(db: Db, b: Backend) {
    // No cache, so every read goes to the KMS and checks the wrapped key.
    let e = env(db, b, Duration::ZERO).await;
    let (o, admin) = org(&e.store, "acme").await;
    let a = e.vault.put(&o, &Scope::Org, "A", b"value-a-canary", &admin, None, &ctx(&o)).await.unwrap();
    let bm = e.vault.put(&o, &Scope::Org, "B", b"value-b-canary", &admin, None, &ctx(&o)).await.unwrap();
    let sealed_a = e.store.sealed_current(&o, &a.id).await.unwrap();
    let sealed_b = e.store.sealed_current(&o, &bm.id).await.unwrap();

    // B's whole sealed row copied onto A: the AAD names A, so it does not open.
    e.store.overwrite_sealed_for_test(&o, a.id.as_str(), 1, &sealed_b).await.unwrap();
    let r = e.vault.read(&o, &a.id, "t").await;
    assert!(matches!(r, Err(VaultError::Integrity)), "{r:?}");
    // A flipped bit in the wrapped key.
    let mut bad = sealed_a.clone();
    let last = bad.wrapped_dek.len() - 1;
    bad.wrapped_dek[last] ^= 1;
    e.store.overwrite_sealed_for_test(&o, a.id.as_str(), 1, &bad).await.unwrap();
    assert!(matches!(e.vault.read(&o, &a.id, "t").await, Err(VaultError::Integrity)));
    // A flipped bit in the ciphertext.
    let mut bad = sealed_a.clone();
    bad.ciphertext[0] ^= 1;
    e.store.overwrite_sealed_for_test(&o, a.id.as_str(), 1, &bad).await.unwrap();
    assert!(matches!(e.vault.read(&o, &a.id, "t").await, Err(VaultError::Integrity)));
    // Restored, it opens again; B was never affected.
    e.store.overwrite_sealed_for_test(&o, a.id.as_str(), 1, &sealed_a).await.unwrap();
    assert_eq!(e.vault.read(&o, &a.id, "t").await.unwrap().expose(), b"value-a-canary");
    assert_eq!(e.vault.read(&o, &bm.id, "t").await.unwrap().expose(), b"value-b-canary");
}

async fn scopes_resolve_by_precedence(db: Db, b: Backend) {
    let e = env(db, b, Duration::from_secs(60)).await;
    let (o, admin) = org(&e.store, "acme").await;
    let fin = e.store.create_folder(&o, None, "finance", &ctx(&o)).await.unwrap();
    let sub = e.store.create_folder(&o, Some(&fin.id), "refunds", &ctx(&o)).await.unwrap();
    let app = e
        .store
        .create_app(
            &o,
            NewApp {
                name: "tool".into(),
                folder_id: sub.id.clone(),
                owner_id: admin.clone(),
                sensitivity: Sensitivity::Normal,
                description: None,
            },
            &ctx(&o),
        )
        .await
        .unwrap();
    e.vault.put(&o, &Scope::Org, "TOKEN", b"org-level-value", &admin, None, &ctx(&o)).await.unwrap();
    assert_eq!(e.vault.resolve(&o, &app, "TOKEN", "t").await.unwrap().expose(), b"org-level-value");
    e.vault.put(&o, &Scope::Folder(fin.id.clone()), "TOKEN", b"finance-value", &admin, None, &ctx(&o)).await.unwrap();
    assert_eq!(e.vault.resolve(&o, &app, "TOKEN", "t").await.unwrap().expose(), b"finance-value");
    e.vault.put(&o, &Scope::App(app.id.clone()), "TOKEN", b"app-own-value", &admin, None, &ctx(&o)).await.unwrap();
    assert_eq!(e.vault.resolve(&o, &app, "TOKEN", "t").await.unwrap().expose(), b"app-own-value");
    assert!(e.vault.resolve(&o, &app, "MISSING", "t").await.is_err());
}

async fn kek_rotation_survives_a_crash(db: Db, b: Backend) {
    let e = env(db, b, Duration::ZERO).await;
    let (o, admin) = org(&e.store, "acme").await;
    let mut ids = Vec::new();
    for i in 0..130 {
        let m = e
            .vault
            .put(&o, &Scope::Org, &format!("S{i}"), format!("value-{i}-canary").as_bytes(), &admin, None, &ctx(&o))
            .await
            .unwrap();
        ids.push(m.id);
    }
    let status = e.vault.rotate_org_key(&o, None, &ctx(&o)).await.unwrap();
    assert!(status.own_key && status.pending_rewrap == 130, "{status:?}");
    // Writes after the switch use the new key at once.
    let late = e.vault.put(&o, &Scope::Org, "LATE", b"late-value", &admin, None, &ctx(&o)).await.unwrap();
    // One batch, then the process "dies".
    let left = e.vault.rewrap(&o, Some(1)).await.unwrap();
    assert_eq!(left, 30);
    // Everything is readable mid-way: each version names the KEK that wraps it.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(e.vault.read(&o, id, "t").await.unwrap().expose(), format!("value-{i}-canary").as_bytes());
    }
    // A fresh vault (a restart) resumes and finishes.
    let restarted = Vault::new(e.store.clone(), e.registry.clone(), e.config.clone());
    restarted.resume_rewraps().await.unwrap();
    assert_eq!(restarted.key_status(&o).await.unwrap().pending_rewrap, 0);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(restarted.read(&o, id, "t").await.unwrap().expose(), format!("value-{i}-canary").as_bytes());
    }
    assert_eq!(restarted.read(&o, &late.id, "t").await.unwrap().expose(), b"late-value");
}

async fn crypto_shredding_one_org(db: Db, b: Backend) {
    let e = env(db, b, Duration::from_secs(60)).await;
    let (a, a_admin) = org(&e.store, "alpha").await;
    let (bo, b_admin) = org(&e.store, "beta").await;
    // Before it has its own key, an org cannot shred the shared default.
    assert!(matches!(e.vault.destroy_org_key(&a, &ctx(&a)).await, Err(VaultError::Invalid(_))));
    let sa = e.vault.put(&a, &Scope::Org, "K", b"alpha-secret-canary", &a_admin, None, &ctx(&a)).await.unwrap();
    let sb = e.vault.put(&bo, &Scope::Org, "K", b"beta-secret-canary", &b_admin, None, &ctx(&bo)).await.unwrap();
    e.vault.rotate_org_key(&a, None, &ctx(&a)).await.unwrap();
    e.vault.rotate_org_key(&bo, None, &ctx(&bo)).await.unwrap();
    assert_eq!(e.vault.read(&a, &sa.id, "t").await.unwrap().expose(), b"alpha-secret-canary"); // warms the cache
    e.vault.destroy_org_key(&a, &ctx(&a)).await.unwrap();
    assert!(matches!(e.vault.read(&a, &sa.id, "t").await, Err(VaultError::KeyDestroyed)));
    assert!(matches!(
        e.vault.put(&a, &Scope::Org, "K2", b"x-canary", &a_admin, None, &ctx(&a)).await,
        Err(VaultError::KeyDestroyed)
    ));
    // Even bypassing the vault's bookkeeping, the wrapped key cannot be opened any more.
    let sealed = e.store.sealed_current(&a, &sa.id).await.unwrap();
    assert!(e.registry.unwrap(&sealed.kek_ref, &sealed.wrapped_dek, b"any").is_err());
    assert_eq!(e.vault.read(&bo, &sb.id, "t").await.unwrap().expose(), b"beta-secret-canary");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_kms_fails_closed() {
    let (store, _dir) = gatehouse_store::testing::sqlite().await;
    let (o, admin) = org(&store, "acme").await;
    let keydir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalKeyFile::open_or_create(&keydir.path().join("kek.json"), "default").unwrap());
    let gone = Arc::new(Pkcs11Kms::new(Pkcs11Config {
        library: "/nonexistent/libhsm.so".into(),
        token_label: "gone".into(),
        pin: String::from("0000").into(),
    }));
    let registry = KmsRegistry::default().with("local", local).with("pkcs11", gone);
    let good = Vault::new(
        store.clone(),
        registry.clone(),
        VaultConfig {
            default_kek: "local:default".into(),
            org_key_backend: "local".into(),
            dek_cache_ttl: Duration::ZERO,
        },
    );
    let s = good.put(&o, &Scope::Org, "K", b"must-not-leak-canary", &admin, None, &ctx(&o)).await.unwrap();
    // Point the org at a key in the HSM that is not there: writes and re-wraps fail closed.
    let err = good.rotate_org_key(&o, Some("pkcs11:somekey".into()), &ctx(&o)).await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
    // The HSM is unreachable: reads of versions wrapped by it fail, with no fallback.
    let hsm_default = Vault::new(
        store.clone(),
        registry.clone(),
        VaultConfig {
            default_kek: "pkcs11:default".into(),
            org_key_backend: "pkcs11".into(),
            dek_cache_ttl: Duration::ZERO,
        },
    );
    let err = hsm_default.put(&o, &Scope::Org, "K2", b"another-canary", &admin, None, &ctx(&o)).await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("canary"));
    // The local key file lost its key: reads fail closed too.
    std::fs::write(keydir.path().join("kek.json"), "{\"version\":1,\"keys\":{}}").unwrap();
    let reopened = Arc::new(LocalKeyFile::open_or_create(&keydir.path().join("kek.json"), "default").unwrap());
    let v = Vault::new(
        store.clone(),
        KmsRegistry::default().with("local", reopened),
        VaultConfig {
            default_kek: "local:default".into(),
            org_key_backend: "local".into(),
            dek_cache_ttl: Duration::ZERO,
        },
    );
    let err = v.read(&o, &s.id, "t").await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
}

#[test]
fn key_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.json");
    LocalKeyFile::open_or_create(&path, "default").unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = LocalKeyFile::open_or_create(&path, "default").unwrap_err();
    assert!(err.to_string().contains("must be 600"), "{err}");
}
