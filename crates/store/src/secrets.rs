//! Storage for the vault: secret metadata and sealed versions. This module stores opaque bytes;
//! sealing and unsealing are the vault's job.

use gatehouse_core::{OrgId, PrincipalId, SecretId, SecretMeta, SecretScopeKind, Timestamp};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col, resource};

/// A sealed secret version as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedVersion {
    /// The secret.
    pub secret_id: String,
    /// The version number.
    pub version: i64,
    /// AES-GCM nonce of the value.
    pub nonce: Vec<u8>,
    /// The value sealed with the version's data key.
    pub ciphertext: Vec<u8>,
    /// The data key, wrapped by the KEK named in `kek_ref`.
    pub wrapped_dek: Vec<u8>,
    /// Which KEK wrapped the data key.
    pub kek_ref: String,
}

/// An org's KEK setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgKey {
    /// The KEK new data keys are wrapped with.
    pub kek_ref: String,
    /// When the org's key was destroyed (crypto-shredding), if it was.
    pub destroyed_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: String,
    scope_kind: String,
    scope_id: String,
    name: String,
    current_version: i64,
    created_by: String,
    created_at: i64,
    last_rotated_at: i64,
    last_rotated_by: String,
    last_used_at: Option<i64>,
    rotate_every_days: Option<i64>,
}

impl SecretRow {
    fn into_meta(self) -> Result<SecretMeta, StoreError> {
        let last_rotated_at = Timestamp::from_millis(self.last_rotated_at);
        let rotation_due = self
            .rotate_every_days
            .is_some_and(|d| Timestamp::now().as_millis() - self.last_rotated_at > d.saturating_mul(86_400_000));
        Ok(SecretMeta {
            id: parse_col("secrets.id", &self.id)?,
            scope_kind: SecretScopeKind::parse(&self.scope_kind).ok_or_else(|| {
                StoreError::Corrupt(format!("column `secrets.scope_kind` holds `{}`", self.scope_kind))
            })?,
            scope_id: self.scope_id,
            name: self.name,
            current_version: self.current_version,
            created_by: parse_col("secrets.created_by", &self.created_by)?,
            created_at: Timestamp::from_millis(self.created_at),
            last_rotated_at,
            last_rotated_by: parse_col("secrets.last_rotated_by", &self.last_rotated_by)?,
            last_used_at: self.last_used_at.map(Timestamp::from_millis),
            rotate_every_days: self.rotate_every_days,
            rotation_due,
        })
    }
}

const SECRET_COLUMNS: &str = "id, scope_kind, scope_id, name, current_version, created_by, created_at, \
                              last_rotated_at, last_rotated_by, last_used_at, rotate_every_days";
const VERSION_COLUMNS: &str = "secret_id, version, nonce, ciphertext, wrapped_dek, kek_ref";

/// A new sealed version to store.
#[derive(Debug, Clone)]
pub struct NewSealedVersion {
    /// Nonce of the value.
    pub nonce: Vec<u8>,
    /// Sealed value.
    pub ciphertext: Vec<u8>,
    /// Wrapped data key.
    pub wrapped_dek: Vec<u8>,
    /// The KEK that wrapped it.
    pub kek_ref: String,
}

impl Store {
    /// The secret named `name` in a scope, creating its (version-less) record if needed, and
    /// the version number the next write should take.
    pub async fn prepare_secret(
        &self,
        org: &OrgId,
        scope: SecretScopeKind,
        scope_id: &str,
        name: &str,
        actor: &PrincipalId,
        rotate_every_days: Option<i64>,
    ) -> Result<(SecretId, i64), StoreError> {
        let now = Timestamp::now().as_millis();
        let id = SecretId::generate();
        let row: (String, i64) = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO secrets (id, org_id, scope_kind, scope_id, name, current_version, created_by, created_at, \
                 last_rotated_at, last_rotated_by, rotate_every_days) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7, $6, $8) \
                 ON CONFLICT (org_id, scope_kind, scope_id, name) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(org.as_str())
            .bind(scope.as_str())
            .bind(scope_id)
            .bind(name)
            .bind(actor.as_str())
            .bind(now)
            .bind(rotate_every_days)
            .execute(&mut *tx)
            .await?;
            let row: (String, i64) = sqlx::query_as(
                "SELECT id, (SELECT COALESCE(MAX(version), 0) FROM secret_versions v WHERE v.org_id = s.org_id AND v.secret_id = s.id) \
                 FROM secrets s WHERE org_id = $1 AND scope_kind = $2 AND scope_id = $3 AND name = $4",
            )
            .bind(org.as_str())
            .bind(scope.as_str())
            .bind(scope_id)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        });
        Ok((parse_col("secrets.id", &row.0)?, row.1 + 1))
    }

    /// Stores version `version` of a secret and makes it current. A concurrent writer that took
    /// the same number gets `Conflict` and retries with the next one.
    #[allow(clippy::too_many_arguments)] // each is a distinct fact of the version
    pub async fn add_secret_version(
        &self,
        org: &OrgId,
        secret: &SecretId,
        version: i64,
        sealed: NewSealedVersion,
        actor: &PrincipalId,
        rotate_every_days: Option<i64>,
        audit: &AuditCtx,
    ) -> Result<SecretMeta, StoreError> {
        let now = Timestamp::now().as_millis();
        // Name and scope only: the value never reaches the audit log, not even as a hash.
        let name: Option<(String, String, String)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT name, scope_kind, scope_id FROM secrets WHERE org_id = $1 AND id = $2"
        )
        .bind(org.as_str())
        .bind(secret.as_str())
        .fetch_optional(pool)
        .await?);
        let (name, scope_kind, scope_id) = name.ok_or_else(|| StoreError::not_found("secret", secret.as_str()))?;
        let event = audit.event(
            if version == 1 { "secret.create" } else { "secret.rotate" },
            resource("secret", secret.as_str()),
            serde_json::json!({"name": name, "scope": scope_kind, "scope_id": scope_id, "version": version, "kek": sealed.kek_ref}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO secret_versions (org_id, secret_id, version, nonce, ciphertext, wrapped_dek, kek_ref, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(org.as_str())
            .bind(secret.as_str())
            .bind(version)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(&sealed.wrapped_dek)
            .bind(&sealed.kek_ref)
            .bind(actor.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE secrets SET current_version = $1, last_rotated_at = $2, last_rotated_by = $3, \
                 rotate_every_days = COALESCE($4, rotate_every_days) WHERE org_id = $5 AND id = $6 AND current_version < $1",
            )
            .bind(version)
            .bind(now)
            .bind(actor.as_str())
            .bind(rotate_every_days)
            .bind(org.as_str())
            .bind(secret.as_str())
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.get_secret(org, secret).await
    }

    /// A secret's metadata.
    pub async fn get_secret(&self, org: &OrgId, id: &SecretId) -> Result<SecretMeta, StoreError> {
        let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE org_id = $1 AND id = $2 AND current_version > 0");
        let row: Option<SecretRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("secret", id.as_str()))?.into_meta()
    }

    /// Secrets of `org` with at least one version, oldest first (ids are time-ordered).
    pub async fn list_secrets(&self, org: &OrgId, page: &crate::Page) -> Result<Vec<SecretMeta>, StoreError> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE org_id = $1 AND current_version > 0 \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows: Vec<SecretRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(page.after.clone())
            .bind(page.limit())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(SecretRow::into_meta).collect()
    }

    /// Secrets named `name` in any scope of `org` (for resolution by precedence).
    pub async fn secrets_named(&self, org: &OrgId, name: &str) -> Result<Vec<SecretMeta>, StoreError> {
        let sql =
            format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE org_id = $1 AND name = $2 AND current_version > 0");
        let rows: Vec<SecretRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(name).fetch_all(pool).await?);
        rows.into_iter().map(SecretRow::into_meta).collect()
    }

    /// The sealed current version of a secret.
    pub async fn sealed_current(&self, org: &OrgId, id: &SecretId) -> Result<SealedVersion, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM secret_versions v WHERE org_id = $1 AND secret_id = $2 \
             AND version = (SELECT current_version FROM secrets s WHERE s.org_id = v.org_id AND s.id = v.secret_id)"
        );
        let row: Option<SealedVersion> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("secret", id.as_str()))
    }

    /// Records that a component read a secret (at most once a minute).
    pub async fn touch_secret(&self, org: &OrgId, id: &SecretId) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            sqlx::query(
            "UPDATE secrets SET last_used_at = $1 WHERE org_id = $2 AND id = $3 AND (last_used_at IS NULL OR last_used_at < $4)"
        )
        .bind(now)
        .bind(org.as_str())
        .bind(id.as_str())
        .bind(now - 60_000)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Deletes a secret and every version of it.
    pub async fn delete_secret(&self, org: &OrgId, id: &SecretId, audit: &AuditCtx) -> Result<(), StoreError> {
        let meta = self.get_secret(org, id).await?;
        let event = audit.event(
            "secret.delete",
            resource("secret", id.as_str()),
            serde_json::json!({"name": meta.name, "scope": meta.scope_kind, "scope_id": meta.scope_id, "versions": meta.current_version}),
        );
        let n = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM secret_versions WHERE org_id = $1 AND secret_id = $2")
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM secrets WHERE org_id = $1 AND id = $2")
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                append_audit!(tx, vec![event])?;
            }
            tx.commit().await?;
            n
        });
        if n == 0 {
            return Err(StoreError::not_found("secret", id.as_str()));
        }
        Ok(())
    }

    /// The org's KEK setting, if it has its own.
    pub async fn org_key(&self, org: &OrgId) -> Result<Option<OrgKey>, StoreError> {
        let row: Option<(String, Option<i64>)> =
            on_read!(self, |pool| sqlx::query_as("SELECT kek_ref, destroyed_at FROM org_keys WHERE org_id = $1")
                .bind(org.as_str())
                .fetch_optional(pool)
                .await?);
        Ok(row.map(|(kek_ref, d)| OrgKey { kek_ref, destroyed_at: d.map(Timestamp::from_millis) }))
    }

    /// Sets the KEK for the org's new data keys (and the target of re-wrapping).
    pub async fn set_org_key(&self, org: &OrgId, kek_ref: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        let previous = self.org_key(org).await?;
        let event = audit.event(
            "vault.key.rotate",
            resource("org_key", org.as_str()),
            serde_json::json!({"kek": kek_ref, "previous": previous.map(|k| k.kek_ref)}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO org_keys (org_id, kek_ref, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (org_id) DO UPDATE SET kek_ref = $2, updated_at = $3, destroyed_at = NULL",
            )
            .bind(org.as_str())
            .bind(kek_ref)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records that the org's key was destroyed.
    pub async fn mark_org_key_destroyed(&self, org: &OrgId, audit: &AuditCtx) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        let key = self.org_key(org).await?;
        let event = audit.event(
            "vault.key.destroy",
            resource("org_key", org.as_str()),
            serde_json::json!({"kek": key.map(|k| k.kek_ref)}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE org_keys SET destroyed_at = $1 WHERE org_id = $2")
                .bind(now)
                .bind(org.as_str())
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` sealed versions of `org` whose data key is not wrapped by `kek_ref`.
    pub async fn versions_not_under(
        &self,
        org: &OrgId,
        kek_ref: &str,
        limit: i64,
    ) -> Result<Vec<SealedVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM secret_versions WHERE org_id = $1 AND kek_ref <> $2 ORDER BY secret_id, version LIMIT $3"
        );
        let rows = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(kek_ref)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    /// How many versions of `org` are not yet wrapped by `kek_ref`.
    pub async fn count_versions_not_under(&self, org: &OrgId, kek_ref: &str) -> Result<i64, StoreError> {
        let n: i64 = on_read!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM secret_versions WHERE org_id = $1 AND kek_ref <> $2"
        )
        .bind(org.as_str())
        .bind(kek_ref)
        .fetch_one(pool)
        .await?);
        Ok(n)
    }

    /// Replaces a version's wrapped data key, only if it is still wrapped by `old_kek`
    /// (so a re-wrap interrupted and resumed never clobbers newer work).
    pub async fn rewrap_version(
        &self,
        org: &OrgId,
        secret_id: &str,
        version: i64,
        old_kek: &str,
        new_kek: &str,
        wrapped_dek: &[u8],
    ) -> Result<bool, StoreError> {
        let n = on_write!(self, |pool| sqlx::query(
            "UPDATE secret_versions SET wrapped_dek = $1, kek_ref = $2 \
             WHERE org_id = $3 AND secret_id = $4 AND version = $5 AND kek_ref = $6"
        )
        .bind(wrapped_dek)
        .bind(new_kek)
        .bind(org.as_str())
        .bind(secret_id)
        .bind(version)
        .bind(old_kek)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Orgs that have their own KEK setting.
    pub async fn orgs_with_keys(&self) -> Result<Vec<(OrgId, String)>, StoreError> {
        let rows: Vec<(String, String)> =
            on_read!(self, |pool| sqlx::query_as("SELECT org_id, kek_ref FROM org_keys WHERE destroyed_at IS NULL")
                .fetch_all(pool)
                .await?);
        rows.into_iter().map(|(o, k)| Ok((parse_col("org_keys.org_id", &o)?, k))).collect()
    }
}

#[cfg(feature = "testsuite")]
impl Store {
    /// Overwrites a stored version's sealed fields, as an attacker with database access could.
    pub async fn overwrite_sealed_for_test(
        &self,
        org: &OrgId,
        secret_id: &str,
        version: i64,
        sealed: &SealedVersion,
    ) -> Result<(), StoreError> {
        on_write!(self, |pool| sqlx::query(
            "UPDATE secret_versions SET nonce = $1, ciphertext = $2, wrapped_dek = $3, kek_ref = $4 \
             WHERE org_id = $5 AND secret_id = $6 AND version = $7"
        )
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(&sealed.wrapped_dek)
        .bind(&sealed.kek_ref)
        .bind(org.as_str())
        .bind(secret_id)
        .bind(version)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
