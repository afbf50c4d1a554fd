//! The folder tree of each org. Folders nest; later, roles granted on a folder are inherited by
//! everything below it, so the tree must stay a tree: moves that would make a cycle are refused.

use std::collections::HashMap;

use gatehouse_core::{Folder, FolderId, OrgId, Timestamp, validate_slug};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col};

#[derive(sqlx::FromRow, Clone)]
struct FolderRow {
    id: String,
    parent_id: Option<String>,
    name: String,
    created_at: i64,
}

const SELECT_FOLDERS: &str = "SELECT id, parent_id, name, created_at FROM folders WHERE org_id = $1";

/// The folders of one org with their paths worked out.
struct FolderTree {
    by_id: HashMap<String, FolderRow>,
}

impl FolderTree {
    fn new(rows: Vec<FolderRow>) -> Self {
        Self { by_id: rows.into_iter().map(|r| (r.id.clone(), r)).collect() }
    }

    fn root(&self) -> Result<&FolderRow, StoreError> {
        self.by_id
            .values()
            .find(|r| r.parent_id.is_none())
            .ok_or_else(|| StoreError::Corrupt("organization has no root folder".to_owned()))
    }

    /// Ids from `id` up to the root, `id` first.
    fn ancestors(&self, id: &str) -> Result<Vec<&str>, StoreError> {
        let mut chain = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            if chain.len() > self.by_id.len() {
                return Err(StoreError::Corrupt("folder tree has a cycle".to_owned()));
            }
            let row = self.by_id.get(c).ok_or_else(|| StoreError::not_found("folder", c))?;
            chain.push(row.id.as_str());
            cur = row.parent_id.as_deref();
        }
        Ok(chain)
    }

    fn path(&self, id: &str) -> Result<String, StoreError> {
        let chain = self.ancestors(id)?;
        let names: Vec<&str> =
            chain.iter().rev().skip(1).filter_map(|i| self.by_id.get(*i)).map(|r| r.name.as_str()).collect();
        Ok(format!("/{}", names.join("/")))
    }

    fn folder(&self, id: &str) -> Result<Folder, StoreError> {
        let row = self.by_id.get(id).ok_or_else(|| StoreError::not_found("folder", id))?;
        Ok(Folder {
            id: parse_col("folders.id", &row.id)?,
            parent_id: row.parent_id.as_deref().map(|p| parse_col("folders.parent_id", p)).transpose()?,
            name: row.name.clone(),
            path: self.path(id)?,
            created_at: Timestamp::from_millis(row.created_at),
        })
    }

    fn sibling_named(&self, parent: &str, name: &str) -> bool {
        self.by_id.values().any(|r| r.parent_id.as_deref() == Some(parent) && r.name == name)
    }
}

fn check_folder_name(name: &str) -> Result<(), StoreError> {
    validate_slug("folder", name).map_err(|e| StoreError::Invalid(e.to_string()))
}

impl Store {
    async fn folder_tree(&self, org: &OrgId) -> Result<FolderTree, StoreError> {
        let rows: Vec<FolderRow> =
            on_read!(self, |pool| sqlx::query_as(SELECT_FOLDERS).bind(org.as_str()).fetch_all(pool).await?);
        Ok(FolderTree::new(rows))
    }

    /// All folders of `org`, by path.
    pub async fn list_folders(&self, org: &OrgId) -> Result<Vec<Folder>, StoreError> {
        let tree = self.folder_tree(org).await?;
        let mut out = tree.by_id.keys().map(|id| tree.folder(id)).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The folder `id` in `org`.
    pub async fn get_folder(&self, org: &OrgId, id: &FolderId) -> Result<Folder, StoreError> {
        self.folder_tree(org).await?.folder(id.as_str())
    }

    /// The root folder (`/`) of `org`.
    pub async fn root_folder(&self, org: &OrgId) -> Result<Folder, StoreError> {
        let tree = self.folder_tree(org).await?;
        let root = tree.root()?.id.clone();
        tree.folder(&root)
    }

    /// The folder at `path` (such as `/finance/refunds`) in `org`.
    pub async fn folder_by_path(&self, org: &OrgId, path: &str) -> Result<Folder, StoreError> {
        let tree = self.folder_tree(org).await?;
        let mut cur = tree.root()?.id.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = tree
                .by_id
                .values()
                .find(|r| r.parent_id.as_deref() == Some(cur.as_str()) && r.name == part)
                .map(|r| r.id.clone())
                .ok_or_else(|| StoreError::not_found("folder", path))?;
        }
        tree.folder(&cur)
    }

    /// Runs a change to the folder tree of `org` with the tree loaded inside the same
    /// transaction, serialized per org on PostgreSQL so concurrent moves cannot form a cycle.
    async fn change_tree<F>(&self, org: &OrgId, audit: &AuditCtx, decide: F) -> Result<FolderId, StoreError>
    where
        F: FnOnce(&FolderTree) -> Result<TreeChange, StoreError>,
    {
        let is_pg = self.is_postgres();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            if is_pg {
                sqlx::query("SELECT id FROM orgs WHERE id = $1 FOR UPDATE")
                    .bind(org.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let rows: Vec<FolderRow> = sqlx::query_as(SELECT_FOLDERS).bind(org.as_str()).fetch_all(&mut *tx).await?;
            let tree = FolderTree::new(rows);
            let change = decide(&tree)?;
            let event = change.event(&tree, audit)?;
            let id = match change {
                TreeChange::Insert { id, parent, name } => {
                    sqlx::query(
                        "INSERT INTO folders (id, org_id, parent_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id.as_str())
                    .bind(org.as_str())
                    .bind(parent)
                    .bind(name)
                    .bind(Timestamp::now().as_millis())
                    .execute(&mut *tx)
                    .await?;
                    id
                }
                TreeChange::Update { id, parent, name } => {
                    sqlx::query("UPDATE folders SET parent_id = $1, name = $2 WHERE org_id = $3 AND id = $4")
                        .bind(parent)
                        .bind(name)
                        .bind(org.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    id
                }
                TreeChange::Delete { id } => {
                    let apps: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM apps WHERE org_id = $1 AND folder_id = $2")
                            .bind(org.as_str())
                            .bind(id.as_str())
                            .fetch_one(&mut *tx)
                            .await?;
                    if apps > 0 {
                        return Err(StoreError::Invalid(format!(
                            "folder holds {apps} app(s); move or archive them first"
                        )));
                    }
                    // Grants on the folder go with it (the audit record names the folder).
                    sqlx::query("DELETE FROM role_bindings WHERE org_id = $1 AND folder_id = $2")
                        .bind(org.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM folders WHERE org_id = $1 AND id = $2")
                        .bind(org.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    id
                }
            };
            crate::access::bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Creates folder `name` under `parent` (the root when `None`).
    pub async fn create_folder(
        &self,
        org: &OrgId,
        parent: Option<&FolderId>,
        name: &str,
        audit: &AuditCtx,
    ) -> Result<Folder, StoreError> {
        check_folder_name(name)?;
        let id = self
            .change_tree(org, audit, |tree| {
                let parent = match parent {
                    Some(p) => tree
                        .by_id
                        .get(p.as_str())
                        .ok_or_else(|| StoreError::not_found("folder", p.as_str()))?
                        .id
                        .clone(),
                    None => tree.root()?.id.clone(),
                };
                if tree.sibling_named(&parent, name) {
                    return Err(StoreError::Conflict(format!("a folder named `{name}` already exists there")));
                }
                Ok(TreeChange::Insert { id: FolderId::generate(), parent, name: name.to_owned() })
            })
            .await?;
        self.get_folder(org, &id).await
    }

    /// Renames and/or moves folder `id`. Moving under itself or a descendant is refused.
    pub async fn update_folder(
        &self,
        org: &OrgId,
        id: &FolderId,
        new_name: Option<&str>,
        new_parent: Option<&FolderId>,
        audit: &AuditCtx,
    ) -> Result<Folder, StoreError> {
        if let Some(name) = new_name {
            check_folder_name(name)?;
        }
        self.change_tree(org, audit, |tree| {
            let row = tree.by_id.get(id.as_str()).ok_or_else(|| StoreError::not_found("folder", id.as_str()))?;
            let Some(current_parent) = row.parent_id.clone() else {
                return Err(StoreError::Invalid("the root folder cannot be renamed or moved".to_owned()));
            };
            let parent = match new_parent {
                Some(p) => {
                    if !tree.by_id.contains_key(p.as_str()) {
                        return Err(StoreError::not_found("folder", p.as_str()));
                    }
                    if tree.ancestors(p.as_str())?.contains(&id.as_str()) {
                        return Err(StoreError::Invalid(format!(
                            "cannot move folder `{}` into itself or one of its subfolders",
                            tree.path(id.as_str())?
                        )));
                    }
                    p.as_str().to_owned()
                }
                None => current_parent.clone(),
            };
            let name = new_name.unwrap_or(&row.name).to_owned();
            if (parent != current_parent || name != row.name) && tree.sibling_named(&parent, &name) {
                return Err(StoreError::Conflict(format!("a folder named `{name}` already exists there")));
            }
            Ok(TreeChange::Update { id: id.clone(), parent, name })
        })
        .await?;
        self.get_folder(org, id).await
    }

    /// Deletes folder `id` if it has no subfolders and no apps.
    pub async fn delete_folder(&self, org: &OrgId, id: &FolderId, audit: &AuditCtx) -> Result<(), StoreError> {
        self.change_tree(org, audit, |tree| {
            let row = tree.by_id.get(id.as_str()).ok_or_else(|| StoreError::not_found("folder", id.as_str()))?;
            if row.parent_id.is_none() {
                return Err(StoreError::Invalid("the root folder cannot be deleted".to_owned()));
            }
            if tree.by_id.values().any(|r| r.parent_id.as_deref() == Some(id.as_str())) {
                return Err(StoreError::Invalid("folder has subfolders; delete or move them first".to_owned()));
            }
            Ok(TreeChange::Delete { id: id.clone() })
        })
        .await?;
        Ok(())
    }
}

enum TreeChange {
    Insert { id: FolderId, parent: String, name: String },
    Update { id: FolderId, parent: String, name: String },
    Delete { id: FolderId },
}

impl TreeChange {
    /// The audit event for this change, with the folder's path before and after.
    fn event(&self, tree: &FolderTree, audit: &AuditCtx) -> Result<gatehouse_core::audit::AuditDraft, StoreError> {
        let join = |parent: &str, name: &str| -> Result<String, StoreError> {
            let p = tree.path(parent)?;
            Ok(if p == "/" { format!("/{name}") } else { format!("{p}/{name}") })
        };
        let (action, id, path, details) = match self {
            TreeChange::Insert { id, parent, name } => {
                ("folder.create", id, join(parent, name)?, serde_json::json!({}))
            }
            TreeChange::Update { id, parent, name } => {
                let from = tree.path(id.as_str())?;
                ("folder.update", id, join(parent, name)?, serde_json::json!({ "from": from }))
            }
            TreeChange::Delete { id } => ("folder.delete", id, tree.path(id.as_str())?, serde_json::json!({})),
        };
        let resource =
            gatehouse_core::audit::ResourceRef { kind: "folder".to_owned(), id: id.to_string(), path: Some(path) };
        Ok(audit.event(action, resource, details))
    }
}
