//! Apps: the governed units builders push revisions of.

use gatehouse_core::{App, AppId, AppStatus, FolderId, OrgId, PrincipalId, Sensitivity, Timestamp, validate_slug};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col};

/// What is needed to create an app.
#[derive(Debug, Clone)]
pub struct NewApp {
    /// Slug, unique in the org.
    pub name: String,
    /// The folder it lives in.
    pub folder_id: FolderId,
    /// The accountable owner.
    pub owner_id: PrincipalId,
    /// Sensitivity set by IT.
    pub sensitivity: Sensitivity,
    /// Free text.
    pub description: Option<String>,
}

/// A change to an app; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AppPatch {
    /// Move to this folder.
    pub folder_id: Option<FolderId>,
    /// New owner.
    pub owner_id: Option<PrincipalId>,
    /// New sensitivity.
    pub sensitivity: Option<Sensitivity>,
    /// Archive or reactivate.
    pub status: Option<AppStatus>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    folder_id: String,
    name: String,
    owner_id: String,
    sensitivity: String,
    status: String,
    description: Option<String>,
    head_revision: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl AppRow {
    fn into_app(self) -> Result<App, StoreError> {
        Ok(App {
            id: parse_col("apps.id", &self.id)?,
            folder_id: parse_col("apps.folder_id", &self.folder_id)?,
            name: self.name,
            owner_id: parse_col("apps.owner_id", &self.owner_id)?,
            sensitivity: parse_col("apps.sensitivity", &self.sensitivity)?,
            status: AppStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("column `apps.status` holds `{}`", self.status)))?,
            description: self.description,
            head_revision: self.head_revision,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

const APP_COLUMNS: &str =
    "id, folder_id, name, owner_id, sensitivity, status, description, head_revision, created_at, updated_at";

fn check_description(d: &Option<String>) -> Result<(), StoreError> {
    if d.as_ref().is_some_and(|d| d.len() > 2000) {
        return Err(StoreError::Invalid("description must be at most 2000 characters".to_owned()));
    }
    Ok(())
}

impl Store {
    /// Creates an app. The folder and owner must belong to `org`.
    pub async fn create_app(&self, org: &OrgId, new: NewApp, audit: &AuditCtx) -> Result<App, StoreError> {
        validate_slug("app", &new.name).map_err(|e| StoreError::Invalid(e.to_string()))?;
        check_description(&new.description)?;
        // Checked here for a clear message; the composite foreign keys enforce it regardless.
        let folder = self.get_folder(org, &new.folder_id).await?;
        self.get_principal(org, &new.owner_id).await?;
        let now = Timestamp::now();
        let app = App {
            id: AppId::generate(),
            folder_id: new.folder_id,
            name: new.name,
            owner_id: new.owner_id,
            sensitivity: new.sensitivity,
            status: AppStatus::Active,
            description: new.description,
            head_revision: None,
            created_at: now,
            updated_at: now,
        };
        let event = audit.event(
            "app.create",
            app_ref(&app, &folder.path),
            serde_json::json!({"name": app.name, "owner": app.owner_id, "sensitivity": app.sensitivity}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO apps (id, org_id, folder_id, name, owner_id, sensitivity, status, description, head_revision, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $9)",
            )
            .bind(app.id.as_str())
            .bind(org.as_str())
            .bind(app.folder_id.as_str())
            .bind(&app.name)
            .bind(app.owner_id.as_str())
            .bind(app.sensitivity.as_str())
            .bind(app.status.as_str())
            .bind(&app.description)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("an app named `{}` already exists", app.name)),
                other => other,
            })?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(app)
    }

    /// The app `id` in `org`.
    pub async fn get_app(&self, org: &OrgId, id: &AppId) -> Result<App, StoreError> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE org_id = $1 AND id = $2");
        let row: Option<AppRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("app", id.as_str()))?.into_app()
    }

    /// The app named `name` in `org`.
    pub async fn app_by_name(&self, org: &OrgId, name: &str) -> Result<App, StoreError> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE org_id = $1 AND name = $2");
        let row: Option<AppRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(name).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("app", name))?.into_app()
    }

    /// Apps of `org` by name, optionally only those directly in `folder`.
    pub async fn list_apps(
        &self,
        org: &OrgId,
        folder: Option<&FolderId>,
        page: &crate::Page,
    ) -> Result<Vec<App>, StoreError> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE org_id = $1 AND ($2 IS NULL OR folder_id = $2) \
             AND ($3 IS NULL OR name > $3) ORDER BY name LIMIT $4"
        );
        let rows: Vec<AppRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(folder.map(|f| f.as_str().to_owned()))
            .bind(page.after.clone())
            .bind(page.limit())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(AppRow::into_app).collect()
    }

    /// Applies `patch` to app `id`.
    pub async fn update_app(
        &self,
        org: &OrgId,
        id: &AppId,
        patch: AppPatch,
        audit: &AuditCtx,
    ) -> Result<App, StoreError> {
        let mut app = self.get_app(org, id).await?;
        let before = app.clone();
        let folder = match patch.folder_id {
            Some(folder) => {
                let f = self.get_folder(org, &folder).await?;
                app.folder_id = folder;
                f
            }
            None => self.get_folder(org, &app.folder_id).await?,
        };
        if let Some(owner) = patch.owner_id {
            self.get_principal(org, &owner).await?;
            app.owner_id = owner;
        }
        if let Some(s) = patch.sensitivity {
            app.sensitivity = s;
        }
        if let Some(s) = patch.status {
            app.status = s;
        }
        if let Some(d) = patch.description {
            check_description(&d)?;
            app.description = d;
        }
        app.updated_at = Timestamp::now();
        let event = audit.event("app.update", app_ref(&app, &folder.path), changes(&before, &app));
        let n = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
            "UPDATE apps SET folder_id = $1, owner_id = $2, sensitivity = $3, status = $4, description = $5, updated_at = $6 \
             WHERE org_id = $7 AND id = $8",
        )
        .bind(app.folder_id.as_str())
        .bind(app.owner_id.as_str())
        .bind(app.sensitivity.as_str())
        .bind(app.status.as_str())
        .bind(&app.description)
        .bind(app.updated_at.as_millis())
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
            return Err(StoreError::not_found("app", id.as_str()));
        }
        Ok(app)
    }
}

/// An app as an audit resource, placed in its folder.
pub(crate) fn app_ref(app: &App, folder_path: &str) -> gatehouse_core::audit::ResourceRef {
    let path = if folder_path == "/" { format!("/{}", app.name) } else { format!("{folder_path}/{}", app.name) };
    gatehouse_core::audit::ResourceRef { kind: "app".to_owned(), id: app.id.to_string(), path: Some(path) }
}

/// The fields a patch changed, as `{field: {from, to}}`.
fn changes(before: &App, after: &App) -> serde_json::Value {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return serde_json::json!({});
    };
    let changed: serde_json::Map<String, serde_json::Value> = a
        .into_iter()
        .filter(|(k, v)| k != "updated_at" && b.get(k) != Some(v))
        .map(|(k, v)| {
            let from = b.get(&k).cloned().unwrap_or_default();
            (k, serde_json::json!({"from": from, "to": v}))
        })
        .collect();
    serde_json::json!({ "changes": changed })
}
