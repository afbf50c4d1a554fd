//! Builds the vault from configuration.

use std::sync::Arc;

use gatehouse_store::Store;
use gatehouse_vault::kms::KmsRegistry;
use gatehouse_vault::kms::local::LocalKeyFile;
use gatehouse_vault::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use gatehouse_vault::{Vault, VaultConfig};
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError, Env};

/// The vault with the KMS backends `config` names. The PKCS#11 PIN is read from the configured
/// PIN file or `GATEHOUSE_PKCS11_PIN`; the token itself is opened on first use, so a server whose
/// HSM is away still starts, and its secret operations fail closed until the HSM is back.
pub fn open_vault(store: Store, config: &Config, env: &dyn Env) -> Result<Vault, ConfigError> {
    let settings = &config.vault;
    let initial = settings.default_kek.strip_prefix("local:").unwrap_or("default").to_owned();
    let local =
        LocalKeyFile::open_or_create(&config.key_file(), &initial).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let mut registry = KmsRegistry::default().with("local", Arc::new(local));
    if let Some(p) = &settings.pkcs11 {
        let pin = match (&p.pin_file, env.get("GATEHOUSE_PKCS11_PIN")) {
            (Some(file), _) => Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        ConfigError::Invalid(format!("cannot read the PKCS#11 PIN file `{}`: {e}", file.display()))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, Some(pin)) => Zeroizing::new(pin),
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "`[vault.pkcs11]` needs `pin_file` or the GATEHOUSE_PKCS11_PIN environment variable".to_owned(),
                ));
            }
        };
        let kms = Pkcs11Kms::new(Pkcs11Config { library: p.library.clone(), token_label: p.token_label.clone(), pin });
        registry = registry.with("pkcs11", Arc::new(kms));
    }
    Ok(Vault::new(
        store,
        registry,
        VaultConfig {
            default_kek: settings.default_kek.clone(),
            org_key_backend: settings.org_key_backend.clone(),
            dek_cache_ttl: settings.dek_cache_ttl,
        },
    ))
}
