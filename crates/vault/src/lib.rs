//! The vault: named secrets scoped to an org, a folder (inherited below it) or an app; versioned;
//! write-only to people, readable only by Gatehouse components that use them.
//!
//! Every version is sealed with its own random data key (AES-256-GCM); the additional
//! authenticated data binds the org, the secret's id and name and the version, so a ciphertext or
//! wrapped key moved to another row fails to open. Data keys are wrapped by a key-encryption key
//! held by a [`kms::Kms`]: a local key file or a PKCS#11 token. If the KMS cannot be reached,
//! reads fail; nothing falls back to plaintext, and unwrapped data keys are cached for a short,
//! configured time at most.

mod blob;
mod cache;
pub mod kms;
pub mod redact;

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use gatehouse_core::{App, OrgId, PrincipalId, SecretId, SecretMeta, SecretScopeKind};
use gatehouse_store::{AuditCtx, NewSealedVersion, Store, StoreError};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::cache::DekCache;
use crate::kms::{KmsError, KmsRegistry};
use crate::redact::Redactor;

/// Largest secret value accepted.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A secret's plaintext. Its `Debug` never shows the value, and its memory is wiped on drop.
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// The bytes, for the component that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(****)")
    }
}

/// What can go wrong in the vault. No variant carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The request is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The KMS is unreachable or refuses us; fail closed.
    #[error("secrets are unavailable: {0}")]
    Unavailable(String),
    /// The org's key was destroyed; its secrets are gone for good.
    #[error("the organization's key was destroyed; its secrets can no longer be read")]
    KeyDestroyed,
    /// A stored ciphertext or wrapped key did not authenticate: tampering or corruption.
    #[error("a stored secret failed its integrity check")]
    Integrity,
    /// A storage error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<KmsError> for VaultError {
    fn from(e: KmsError) -> Self {
        match e {
            KmsError::Integrity => VaultError::Integrity,
            KmsError::BadReference(_) | KmsError::KeyExists(_) => VaultError::Invalid(e.to_string()),
            KmsError::KeyNotFound(_) | KmsError::Unavailable(_) => VaultError::Unavailable(e.to_string()),
        }
    }
}

/// Where a secret is put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole org.
    Org,
    /// A folder and everything below it.
    Folder(gatehouse_core::FolderId),
    /// One app.
    App(gatehouse_core::AppId),
}

impl Scope {
    fn parts(&self, org: &OrgId) -> (SecretScopeKind, String) {
        match self {
            Scope::Org => (SecretScopeKind::Org, org.to_string()),
            Scope::Folder(f) => (SecretScopeKind::Folder, f.to_string()),
            Scope::App(a) => (SecretScopeKind::App, a.to_string()),
        }
    }
}

/// Progress of re-wrapping an org's data keys under a new KEK.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct KeyStatus {
    /// The KEK new data keys are wrapped with.
    pub kek_ref: String,
    /// Whether it is the org's own key (rather than the deployment default).
    pub own_key: bool,
    /// Secret versions still wrapped by an older KEK.
    pub pending_rewrap: i64,
    /// Whether the org's key was destroyed.
    pub destroyed: bool,
}

/// Settings of a vault.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// The KEK for orgs without their own, such as `local:default`.
    pub default_kek: String,
    /// Backend in which per-org keys are created on rotation (`local` or `pkcs11`).
    pub org_key_backend: String,
    /// How long an unwrapped data key may be reused; zero disables the cache.
    pub dek_cache_ttl: Duration,
}

/// The vault.
#[derive(Clone)]
pub struct Vault {
    store: Store,
    kms: KmsRegistry,
    config: VaultConfig,
    cache: Arc<DekCache>,
}

fn aad(org: &OrgId, secret: &str, name: &str, version: i64) -> Vec<u8> {
    format!("gatehouse/secret/v1\0{org}\0{secret}\0{name}\0{version}").into_bytes()
}

fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(VaultError::Invalid(format!(
            "invalid secret name `{}`: use letters, digits, `_`, `-` and `.`, starting with a letter or `_`, at most 128",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// A value sealed under a fresh data key: the key (still to be wrapped), nonce and ciphertext.
type Sealed = (Zeroizing<[u8; 32]>, [u8; 12], Vec<u8>);

/// Seals `plaintext` under a fresh data key.
fn seal_fresh(plaintext: &[u8], aad: &[u8]) -> Result<Sealed, VaultError> {
    let mut dek = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(dek.as_mut_slice());
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new_from_slice(dek.as_slice()).map_err(|_| VaultError::Integrity)?;
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| VaultError::Integrity)?;
    Ok((dek, nonce, ciphertext))
}

/// Opens what [`seal_fresh`] sealed, given the unwrapped data key.
fn open_with(dek: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    if nonce.len() != 12 {
        return Err(VaultError::Integrity);
    }
    let cipher = Aes256Gcm::new_from_slice(dek).map_err(|_| VaultError::Integrity)?;
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).map_err(|_| VaultError::Integrity)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, VaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| VaultError::Unavailable("key operation was interrupted".to_owned()))
}

impl Vault {
    /// A vault over `store` using the KMS backends in `kms`.
    pub fn new(store: Store, kms: KmsRegistry, config: VaultConfig) -> Self {
        let cache = Arc::new(DekCache::new(config.dek_cache_ttl));
        Self { store, kms, config, cache }
    }

    /// The KEK the org's new data keys are wrapped with.
    async fn org_kek(&self, org: &OrgId) -> Result<(String, bool), VaultError> {
        match self.store.org_key(org).await? {
            Some(k) if k.destroyed_at.is_some() => Err(VaultError::KeyDestroyed),
            Some(k) => Ok((k.kek_ref, true)),
            None => Ok((self.config.default_kek.clone(), false)),
        }
    }

    /// Writes a new version of secret `name` in `scope` (creating the secret on first write).
    #[allow(clippy::too_many_arguments)] // the writer is stored; the audit context says who asked
    pub async fn put(
        &self,
        org: &OrgId,
        scope: &Scope,
        name: &str,
        value: &[u8],
        actor: &PrincipalId,
        rotate_every_days: Option<i64>,
        audit: &AuditCtx,
    ) -> Result<SecretMeta, VaultError> {
        check_name(name)?;
        if value.is_empty() || value.len() > MAX_VALUE_BYTES {
            return Err(VaultError::Invalid(format!("a secret value must be 1 to {MAX_VALUE_BYTES} bytes")));
        }
        if rotate_every_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(VaultError::Invalid("`rotate_every_days` must be from 1 to 3650".to_owned()));
        }
        Redactor::global().register(value);
        let (kek, _) = self.org_kek(org).await?;
        let (kind, scope_id) = scope.parts(org);
        for _ in 0..5 {
            let (secret, version) =
                self.store.prepare_secret(org, kind, &scope_id, name, actor, rotate_every_days).await?;
            let sealed = self.seal(org, &secret, name, version, value, &kek).await?;
            match self.store.add_secret_version(org, &secret, version, sealed, actor, rotate_every_days, audit).await {
                Ok(meta) => return Ok(meta),
                // Another writer took this version number; take the next one.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Unavailable("too many concurrent writes to this secret".to_owned()))
    }

    async fn seal(
        &self,
        org: &OrgId,
        secret: &SecretId,
        name: &str,
        version: i64,
        value: &[u8],
        kek: &str,
    ) -> Result<NewSealedVersion, VaultError> {
        let aad = aad(org, secret.as_str(), name, version);
        let (dek, nonce, ciphertext) = seal_fresh(value, &aad)?;
        let wrapped_dek = self.wrap_key(kek, dek.as_slice(), aad).await?;
        Ok(NewSealedVersion { nonce: nonce.to_vec(), ciphertext, wrapped_dek, kek_ref: kek.to_owned() })
    }

    /// Wraps a data key with KEK `kek` on the blocking pool (KMS calls may block).
    async fn wrap_key(&self, kek: &str, dek: &[u8], aad: Vec<u8>) -> Result<Vec<u8>, VaultError> {
        let (kms, kek, dek) = (self.kms.clone(), kek.to_owned(), Zeroizing::new(dek.to_vec()));
        Ok(blocking(move || kms.wrap(&kek, &dek, &aad)).await??)
    }

    /// Unwraps a data key with KEK `kek` on the blocking pool.
    async fn unwrap_key(&self, kek: &str, wrapped: &[u8], aad: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (kms, kek, wrapped) = (self.kms.clone(), kek.to_owned(), wrapped.to_vec());
        Ok(blocking(move || kms.unwrap(&kek, &wrapped, &aad)).await??)
    }

    /// Metadata of the org's secrets, a page at a time.
    pub async fn list(&self, org: &OrgId, page: &gatehouse_store::Page) -> Result<Vec<SecretMeta>, VaultError> {
        Ok(self.store.list_secrets(org, page).await?)
    }

    /// Metadata of one secret.
    pub async fn get(&self, org: &OrgId, id: &SecretId) -> Result<SecretMeta, VaultError> {
        Ok(self.store.get_secret(org, id).await?)
    }

    /// Deletes a secret with all its versions.
    pub async fn delete(&self, org: &OrgId, id: &SecretId, audit: &AuditCtx) -> Result<(), VaultError> {
        self.store.delete_secret(org, id, audit).await?;
        Ok(())
    }

    /// The current value of a secret, for the Gatehouse `component` that uses it. Never exposed
    /// to people through the API. Every read is in the audit log before the value is returned;
    /// a read that cannot be recorded is refused.
    pub async fn read(&self, org: &OrgId, id: &SecretId, component: &str) -> Result<SecretValue, VaultError> {
        let result = self.read_inner(org, id).await;
        let mut event = AuditCtx::system(org, component).event(
            "secret.read",
            gatehouse_store::resource("secret", id.as_str()),
            serde_json::json!({}),
        );
        if let Err(e) = &result {
            event.outcome = gatehouse_core::audit::Outcome::Failed;
            event.reason = Some(e.to_string());
        }
        self.store.append_audit(vec![event]).await?;
        result
    }

    async fn read_inner(&self, org: &OrgId, id: &SecretId) -> Result<SecretValue, VaultError> {
        if matches!(self.store.org_key(org).await?, Some(k) if k.destroyed_at.is_some()) {
            return Err(VaultError::KeyDestroyed);
        }
        let meta = self.store.get_secret(org, id).await?;
        let sealed = self.store.sealed_current(org, id).await?;
        let aad = aad(org, id.as_str(), &meta.name, sealed.version);
        let dek = match self.cache.get(org, id.as_str(), sealed.version) {
            Some(dek) => dek,
            None => {
                let dek = self.unwrap_key(&sealed.kek_ref, &sealed.wrapped_dek, aad.clone()).await?;
                self.cache.put(org, id.as_str(), sealed.version, dek.clone());
                dek
            }
        };
        let plain = open_with(&dek, &sealed.nonce, &sealed.ciphertext, &aad)?;
        Redactor::global().register(&plain);
        // The last-use stamp is minute-grained; skip the write when it is fresh.
        let now = gatehouse_core::Timestamp::now().as_millis();
        if meta.last_used_at.is_none_or(|t| now - t.as_millis() > 60_000)
            && let Err(e) = self.store.touch_secret(org, id).await
        {
            tracing::warn!(error = %e, "could not record secret use");
        }
        Ok(SecretValue(Zeroizing::new(plain)))
    }

    /// The secret called `name` as `app` sees it: the app's own, else the nearest folder's up the
    /// tree, else the org's.
    pub async fn resolve(
        &self,
        org: &OrgId,
        app: &App,
        name: &str,
        component: &str,
    ) -> Result<SecretValue, VaultError> {
        let candidates = self.store.secrets_named(org, name).await?;
        let pick =
            |kind: SecretScopeKind, id: &str| candidates.iter().find(|s| s.scope_kind == kind && s.scope_id == id);
        let mut found = pick(SecretScopeKind::App, app.id.as_str());
        if found.is_none() && candidates.iter().any(|s| s.scope_kind == SecretScopeKind::Folder) {
            // One read of the tree, then walk up from the app's folder.
            let folders = self.store.list_folders(org).await?;
            let mut folder = Some(app.folder_id.clone());
            while let (None, Some(f)) = (found, folder) {
                found = pick(SecretScopeKind::Folder, f.as_str());
                folder = folders.iter().find(|x| x.id == f).and_then(|x| x.parent_id.clone());
            }
        }
        let found = found.or_else(|| pick(SecretScopeKind::Org, org.as_str()));
        let meta = found.ok_or_else(|| StoreError::NotFound { kind: "secret", id: name.to_owned() })?;
        self.read(org, &meta.id, component).await
    }

    /// The org's key status.
    pub async fn key_status(&self, org: &OrgId) -> Result<KeyStatus, VaultError> {
        let own = self.store.org_key(org).await?;
        let destroyed = own.as_ref().is_some_and(|k| k.destroyed_at.is_some());
        let kek_ref = own.as_ref().map(|k| k.kek_ref.clone()).unwrap_or_else(|| self.config.default_kek.clone());
        let pending_rewrap = self.store.count_versions_not_under(org, &kek_ref).await?;
        Ok(KeyStatus { kek_ref, own_key: own.is_some(), pending_rewrap, destroyed })
    }

    /// Moves the org to a new KEK: `kek_ref` if given (an existing key, such as one the customer
    /// created in their HSM), else a new key created for the org. New writes use it at once; the
    /// existing data keys are re-wrapped by [`Vault::rewrap`], which the caller runs in the
    /// background.
    pub async fn rotate_org_key(
        &self,
        org: &OrgId,
        kek_ref: Option<String>,
        audit: &AuditCtx,
    ) -> Result<KeyStatus, VaultError> {
        if matches!(self.store.org_key(org).await?, Some(k) if k.destroyed_at.is_some()) {
            return Err(VaultError::KeyDestroyed);
        }
        let target = match kek_ref {
            Some(r) => {
                let kms = self.kms.clone();
                let r2 = r.clone();
                let exists = blocking(move || {
                    let (backend, name) = kms.resolve(&r2)?;
                    backend.has_key(name)
                })
                .await??;
                if !exists {
                    return Err(VaultError::Invalid(format!("key `{r}` does not exist in its KMS")));
                }
                r
            }
            None => {
                let name = format!("org-{}-{}", &org.as_str()[4..], gatehouse_core::Timestamp::now().as_millis());
                let reference = format!("{}:{name}", self.config.org_key_backend);
                let kms = self.kms.clone();
                let r2 = reference.clone();
                blocking(move || {
                    let (backend, name) = kms.resolve(&r2)?;
                    backend.create_key(name)
                })
                .await??;
                reference
            }
        };
        self.store.set_org_key(org, &target, audit).await?;
        self.key_status(org).await
    }

    /// Re-wraps up to `max_batches` batches of the org's data keys that are not yet under its
    /// current KEK (all of them when `None`). Safe to interrupt and run again: each row is
    /// switched atomically and only if still under its old KEK. Returns how many remain.
    pub async fn rewrap(&self, org: &OrgId, max_batches: Option<usize>) -> Result<i64, VaultError> {
        let (target, _) = self.org_kek(org).await?;
        let mut batches = 0;
        loop {
            if max_batches.is_some_and(|m| batches >= m) {
                break;
            }
            let rows = self.store.versions_not_under(org, &target, 100).await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let meta = self.store.get_secret(org, &row.secret_id.parse().map_err(|_| VaultError::Integrity)?).await;
                let name = match meta {
                    Ok(m) => m.name,
                    Err(StoreError::NotFound { .. }) => continue, // deleted meanwhile
                    Err(e) => return Err(e.into()),
                };
                let aad = aad(org, &row.secret_id, &name, row.version);
                let dek = self.unwrap_key(&row.kek_ref, &row.wrapped_dek, aad.clone()).await?;
                let rewrapped = self.wrap_key(&target, &dek, aad).await?;
                self.store.rewrap_version(org, &row.secret_id, row.version, &row.kek_ref, &target, &rewrapped).await?;
            }
            batches += 1;
        }
        Ok(self.store.count_versions_not_under(org, &target).await?)
    }

    /// Finishes re-wraps interrupted by a restart. Run at start, in the background.
    pub async fn resume_rewraps(&self) -> Result<(), VaultError> {
        for (org, _) in self.store.orgs_with_keys().await? {
            let left = self.rewrap(&org, None).await?;
            if left > 0 {
                tracing::warn!(%org, left, "re-wrap incomplete");
            }
        }
        Ok(())
    }

    /// Crypto-shredding: destroys the org's own KEK, making every secret of the org unreadable
    /// for good. Other orgs are unaffected. Refused for the deployment's default key.
    pub async fn destroy_org_key(&self, org: &OrgId, audit: &AuditCtx) -> Result<(), VaultError> {
        let Some(key) = self.store.org_key(org).await? else {
            return Err(VaultError::Invalid(
                "the organization uses the deployment's default key; rotate to its own key before destroying it"
                    .to_owned(),
            ));
        };
        let kms = self.kms.clone();
        let reference = key.kek_ref.clone();
        let still_in_kms = blocking(move || {
            let (backend, name) = kms.resolve(&reference)?;
            backend.has_key(name)
        })
        .await??;
        if key.destroyed_at.is_some() && !still_in_kms {
            return Err(VaultError::KeyDestroyed);
        }
        if key.destroyed_at.is_none() {
            if self.store.count_versions_not_under(org, &key.kek_ref).await? > 0 {
                // Versions still under an older (possibly shared) key would survive the shred.
                self.rewrap(org, None).await?;
            }
            // Recorded (and marked, so nothing reads under it again) before the irreversible
            // step; if the KMS then fails, running destroy again finishes the job.
            self.store.mark_org_key_destroyed(org, audit).await?;
        }
        self.cache.forget_org(org);
        let kms = self.kms.clone();
        let reference = key.kek_ref.clone();
        blocking(move || {
            let (backend, name) = kms.resolve(&reference)?;
            backend.destroy_key(name)
        })
        .await??;
        Ok(())
    }
}
