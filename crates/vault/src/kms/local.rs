//! KEKs in a local key file: the default for the embedded setup. The file is created on first
//! use with mode 0600 and holds random 256-bit keys by name; wrapping is AES-256-GCM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Kms, KmsError};

const NONCE_LEN: usize = 12;

#[derive(Serialize, Deserialize, Default)]
struct KeyFile {
    version: u32,
    /// Name → hex key.
    keys: BTreeMap<String, String>,
}

/// A KMS backed by a key file readable by the server's user alone.
pub struct LocalKeyFile {
    path: PathBuf,
    keys: RwLock<BTreeMap<String, Zeroizing<[u8; 32]>>>,
}

impl std::fmt::Debug for LocalKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyFile").field("path", &self.path).finish_non_exhaustive()
    }
}

fn unavailable(path: &Path, what: impl std::fmt::Display) -> KmsError {
    KmsError::Unavailable(format!("key file `{}`: {what}", path.display()))
}

impl LocalKeyFile {
    /// Opens the key file, creating it with one key called `initial` if it does not exist.
    pub fn open_or_create(path: &Path, initial: &str) -> Result<Self, KmsError> {
        let kms = Self { path: path.to_owned(), keys: RwLock::new(BTreeMap::new()) };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                let file: KeyFile =
                    serde_json::from_str(&text).map_err(|_| unavailable(path, "not a valid key file"))?;
                let mut keys = BTreeMap::new();
                for (name, hex_key) in file.keys {
                    let raw = Zeroizing::new(hex::decode(hex_key).map_err(|_| unavailable(path, "a key is not hex"))?);
                    let arr: [u8; 32] =
                        raw.as_slice().try_into().map_err(|_| unavailable(path, "a key is not 256 bits"))?;
                    keys.insert(name, Zeroizing::new(arr));
                }
                *kms.keys.write().map_err(|_| unavailable(path, "lock poisoned"))? = keys;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| unavailable(path, e))?;
                }
                kms.create_key(initial)?;
            }
            Err(e) => return Err(unavailable(path, e)),
        }
        Ok(kms)
    }

    fn persist(&self, keys: &BTreeMap<String, Zeroizing<[u8; 32]>>) -> Result<(), KmsError> {
        use std::io::Write;
        let file =
            KeyFile { version: 1, keys: keys.iter().map(|(k, v)| (k.clone(), hex::encode(v.as_slice()))).collect() };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| unavailable(&self.path, e))?);
        let tmp = self.path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| unavailable(&self.path, e))?;
        f.write_all(text.as_bytes()).map_err(|e| unavailable(&self.path, e))?;
        f.sync_all().map_err(|e| unavailable(&self.path, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| unavailable(&self.path, e))?;
        Ok(())
    }

    fn key(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let keys = self.keys.read().map_err(|_| unavailable(&self.path, "lock poisoned"))?;
        keys.get(name).cloned().ok_or_else(|| KmsError::KeyNotFound(format!("local:{name}")))
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KmsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| unavailable(path, e))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(unavailable(path, format!("permissions are {:o}; they must be 600", mode & 0o777)));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KmsError> {
    Ok(())
}

impl Kms for LocalKeyFile {
    fn wrap(&self, name: &str, dek: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsError> {
        let key = self.key(name)?;
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| KmsError::Integrity)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct =
            cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: dek, aad }).map_err(|_| KmsError::Integrity)?;
        let mut out = nonce.to_vec();
        out.extend(ct);
        Ok(out)
    }

    fn unwrap(&self, name: &str, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let key = self.key(name)?;
        if wrapped.len() < NONCE_LEN {
            return Err(KmsError::Integrity);
        }
        let (nonce, ct) = wrapped.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| KmsError::Integrity)?;
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| KmsError::Integrity)
    }

    fn create_key(&self, name: &str) -> Result<(), KmsError> {
        let mut keys = self.keys.write().map_err(|_| unavailable(&self.path, "lock poisoned"))?;
        if keys.contains_key(name) {
            return Err(KmsError::KeyExists(format!("local:{name}")));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut_slice());
        let mut next = keys.clone();
        next.insert(name.to_owned(), key);
        self.persist(&next)?;
        *keys = next;
        Ok(())
    }

    fn destroy_key(&self, name: &str) -> Result<(), KmsError> {
        let mut keys = self.keys.write().map_err(|_| unavailable(&self.path, "lock poisoned"))?;
        if !keys.contains_key(name) {
            return Err(KmsError::KeyNotFound(format!("local:{name}")));
        }
        let mut next = keys.clone();
        next.remove(name);
        self.persist(&next)?;
        *keys = next;
        Ok(())
    }

    fn has_key(&self, name: &str) -> Result<bool, KmsError> {
        Ok(self.keys.read().map_err(|_| unavailable(&self.path, "lock poisoned"))?.contains_key(name))
    }
}
