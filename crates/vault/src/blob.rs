//! Sealed blobs: the vault's envelope encryption for sensitive data other crates keep at rest
//! (integration credentials, signing keys, audit HMAC keys). A blob carries everything needed to
//! open it except the KEK: format tag, KEK reference, wrapped data key, nonce and ciphertext. Its
//! AAD binds the org and a purpose string, so a blob cannot be replayed as another org's or for
//! another use, and destroying the org's key shreds its blobs too.

use gatehouse_core::OrgId;
use zeroize::Zeroizing;

use crate::{SecretValue, Vault, VaultError, open_with, seal_fresh};

const MAGIC: &[u8; 4] = b"GHB1";

fn aad(org: &OrgId, purpose: &str) -> Vec<u8> {
    format!("gatehouse/blob/v1\0{org}\0{purpose}").into_bytes()
}

/// The parts of a sealed blob.
struct Parts<'a> {
    kek_ref: &'a str,
    wrapped: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], VaultError> {
    if rest.len() < n {
        return Err(VaultError::Integrity);
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_prefixed<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], VaultError> {
    let len = take(rest, 2)?;
    let n = u16::from_be_bytes([len[0], len[1]]) as usize;
    take(rest, n)
}

fn parse(blob: &[u8]) -> Result<Parts<'_>, VaultError> {
    let mut rest = blob;
    if take(&mut rest, 4)? != MAGIC {
        return Err(VaultError::Integrity);
    }
    let kek_ref = std::str::from_utf8(take_prefixed(&mut rest)?).map_err(|_| VaultError::Integrity)?;
    let wrapped = take_prefixed(&mut rest)?;
    let nonce = take(&mut rest, 12)?;
    Ok(Parts { kek_ref, wrapped, nonce, ciphertext: rest })
}

fn prefixed(out: &mut Vec<u8>, part: &[u8]) -> Result<(), VaultError> {
    let n = u16::try_from(part.len()).map_err(|_| VaultError::Invalid("key reference too long".to_owned()))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(part);
    Ok(())
}

impl Vault {
    /// Seals `plaintext` for `org` and `purpose` under the org's current KEK.
    pub async fn seal_blob(&self, org: &OrgId, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (kek, _) = self.org_kek(org).await?;
        let aad = aad(org, purpose);
        let (dek, nonce, ciphertext) = seal_fresh(plaintext, &aad)?;
        let wrapped = self.wrap_key(&kek, dek.as_slice(), aad).await?;
        let mut out = Vec::with_capacity(4 + 2 + kek.len() + 2 + wrapped.len() + 12 + ciphertext.len());
        out.extend_from_slice(MAGIC);
        prefixed(&mut out, kek.as_bytes())?;
        prefixed(&mut out, &wrapped)?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a blob sealed by [`Vault::seal_blob`] for the same `org` and `purpose`.
    pub async fn open_blob(&self, org: &OrgId, purpose: &str, blob: &[u8]) -> Result<SecretValue, VaultError> {
        if matches!(self.store.org_key(org).await?, Some(k) if k.destroyed_at.is_some()) {
            return Err(VaultError::KeyDestroyed);
        }
        let parts = parse(blob)?;
        let aad = aad(org, purpose);
        let dek = self.unwrap_key(parts.kek_ref, parts.wrapped, aad.clone()).await?;
        let plain = open_with(&dek, parts.nonce, parts.ciphertext, &aad)?;
        crate::redact::Redactor::global().register(&plain);
        Ok(SecretValue(Zeroizing::new(plain)))
    }

    /// Re-seals a blob under the org's current KEK (after a rotation), for the crate that keeps it.
    pub async fn reseal_blob(&self, org: &OrgId, purpose: &str, blob: &[u8]) -> Result<Vec<u8>, VaultError> {
        let plain = self.open_blob(org, purpose, blob).await?;
        self.seal_blob(org, purpose, plain.expose()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_parses() {
        for junk in [&b""[..], b"GHB1", b"GHB1\xff\xff", b"XXXX\x00\x01a\x00\x00", b"GHB1\x00\x02ab\x00\x01z"] {
            assert!(parse(junk).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x1234_5678;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut framed = MAGIC.to_vec();
            framed.extend(&bytes);
            let _ = parse(&bytes);
            let _ = parse(&framed);
        }
    }
}
