//! Secret reads per second, with and without the data-key cache, on the local key file and on
//! a PKCS#11 token (SoftHSM2 as set up by `bench/run.sh`), over SQLite. Each read is the whole
//! path a component takes: key status, metadata, sealed row, unwrap (or cache hit), decrypt, and
//! the last-used stamp. Prints the median of five rounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_store::NewOrg;
use gatehouse_vault::kms::KmsRegistry;
use gatehouse_vault::kms::local::LocalKeyFile;
use gatehouse_vault::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use gatehouse_vault::{Scope, Vault, VaultConfig};

const SECRETS: usize = 50;
const READS: usize = 2_000;
const ROUNDS: usize = 5;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let store = gatehouse_store::Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let boot = store
        .create_org(
            NewOrg {
                name: "bench".into(),
                display_name: "bench".into(),
                admin_email: "a@bench.example".into(),
                admin_token_ttl: None,
            },
            &gatehouse_store::testing::outside_ctx(),
        )
        .await
        .unwrap();
    let local = Arc::new(LocalKeyFile::open_or_create(&dir.path().join("keys.json"), "default").unwrap());
    let mut registry = KmsRegistry::default().with("local", local);
    let mut backends = vec!["local:default".to_owned()];
    match (
        std::env::var("GATEHOUSE_TEST_PKCS11_LIB"),
        std::env::var("GATEHOUSE_TEST_PKCS11_TOKEN"),
        std::env::var("GATEHOUSE_TEST_PKCS11_PIN"),
    ) {
        (Ok(lib), Ok(token), Ok(pin)) => {
            let hsm =
                Arc::new(Pkcs11Kms::new(Pkcs11Config { library: lib.into(), token_label: token, pin: pin.into() }));
            gatehouse_vault::kms::Kms::create_key(hsm.as_ref(), "bench-kek").ok();
            registry = registry.with("pkcs11", hsm);
            backends.push("pkcs11:bench-kek".to_owned());
        }
        _ => eprintln!("GATEHOUSE_TEST_PKCS11_* not set: measuring the local backend only"),
    }
    println!("vault reads over SQLite, {SECRETS} secrets, {READS} reads per round, median of {ROUNDS} rounds");
    for kek in &backends {
        let mut per_cache = Vec::new();
        for ttl in [Duration::ZERO, Duration::from_secs(60)] {
            let vault = Vault::new(
                store.clone(),
                registry.clone(),
                VaultConfig { default_kek: kek.clone(), org_key_backend: "local".into(), dek_cache_ttl: ttl },
            );
            let mut ids = Vec::new();
            for i in 0..SECRETS {
                let name = format!("B{}_{}_{i}", kek.replace([':', '-'], "_"), ttl.as_secs());
                ids.push(
                    vault
                        .put(
                            &boot.org.id,
                            &Scope::Org,
                            &name,
                            b"benchmark-value-0123456789",
                            &boot.admin.id,
                            None,
                            &gatehouse_store::testing::ctx(&boot.org.id),
                        )
                        .await
                        .unwrap()
                        .id,
                );
            }
            let mut rates = Vec::new();
            for _ in 0..ROUNDS {
                let start = Instant::now();
                for r in 0..READS {
                    let v = vault.read(&boot.org.id, &ids[r % SECRETS], "bench").await.unwrap();
                    std::hint::black_box(v.expose());
                }
                rates.push(READS as f64 / start.elapsed().as_secs_f64());
            }
            rates.sort_by(f64::total_cmp);
            let median = rates[ROUNDS / 2];
            per_cache.push(median);
            println!("  {kek:<18} cache {:<4} {median:>8.0} reads/s", if ttl.is_zero() { "off" } else { "on" });
        }
        println!("  {kek:<18} cache speed-up x{:.2}", per_cache[1] / per_cache[0]);
    }
}
