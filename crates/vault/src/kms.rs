//! Key-encryption keys (KEKs) held by a key management service. The vault only ever asks a KMS
//! to wrap or unwrap a data key; a KEK never leaves its KMS (for PKCS#11 it cannot: it is
//! generated non-extractable inside the token).
//!
//! A KEK is named by a reference `backend:name`, such as `local:default` or `pkcs11:org-acme`.
//! A cloud KMS (AWS, GCP, Azure, Vault Transit) is one more implementation of [`Kms`] registered
//! under its own backend name.

pub mod local;
pub mod pkcs11;

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

/// Why a KMS operation failed. Nothing here ever carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// The KMS cannot be reached or refuses us (HSM absent, wrong PIN, file unreadable).
    #[error("key management service unavailable: {0}")]
    Unavailable(String),
    /// No key with that reference exists (or it was destroyed).
    #[error("key `{0}` does not exist")]
    KeyNotFound(String),
    /// The wrapped key does not authenticate under this KEK and context.
    #[error("wrapped key does not authenticate")]
    Integrity,
    /// The reference is malformed or names an unknown backend.
    #[error("invalid key reference `{0}`: expected `backend:name` with a configured backend")]
    BadReference(String),
    /// A key with that name already exists.
    #[error("key `{0}` already exists")]
    KeyExists(String),
}

/// A service that holds KEKs and wraps data keys with them.
pub trait Kms: Send + Sync {
    /// Wraps `dek` under KEK `name`, binding `aad`.
    fn wrap(&self, name: &str, dek: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// Unwraps a data key wrapped by [`Kms::wrap`] with the same `name` and `aad`.
    fn unwrap(&self, name: &str, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError>;
    /// Creates a new KEK called `name`.
    fn create_key(&self, name: &str) -> Result<(), KmsError>;
    /// Destroys KEK `name`; everything wrapped by it becomes unreadable.
    fn destroy_key(&self, name: &str) -> Result<(), KmsError>;
    /// Whether KEK `name` exists.
    fn has_key(&self, name: &str) -> Result<bool, KmsError>;
}

/// The configured KMS backends, by name.
#[derive(Clone, Default)]
pub struct KmsRegistry {
    backends: HashMap<String, Arc<dyn Kms>>,
}

impl KmsRegistry {
    /// Adds a backend under `name` (the part before `:` in key references).
    pub fn with(mut self, name: &str, kms: Arc<dyn Kms>) -> Self {
        self.backends.insert(name.to_owned(), kms);
        self
    }

    /// The backend and key name a reference points to.
    pub fn resolve<'a>(&self, reference: &'a str) -> Result<(&Arc<dyn Kms>, &'a str), KmsError> {
        let (backend, name) = reference.split_once(':').ok_or_else(|| KmsError::BadReference(reference.to_owned()))?;
        if name.is_empty()
            || name.len() > 100
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(KmsError::BadReference(reference.to_owned()));
        }
        let kms = self.backends.get(backend).ok_or_else(|| KmsError::BadReference(reference.to_owned()))?;
        Ok((kms, name))
    }

    /// Wraps with the KEK `reference`.
    pub fn wrap(&self, reference: &str, dek: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsError> {
        let (kms, name) = self.resolve(reference)?;
        kms.wrap(name, dek, aad)
    }

    /// Unwraps with the KEK `reference`.
    pub fn unwrap(&self, reference: &str, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let (kms, name) = self.resolve(reference)?;
        kms.unwrap(name, wrapped, aad)
    }
}
