//! The records of the control plane as the API shows them and the store returns them.

use serde::{Deserialize, Serialize};

use crate::{AppId, FolderId, OrgId, PrincipalId, PrincipalKind, Scope, Sensitivity, Timestamp, TokenId};

/// An organization: a tenant. Everything else belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Org {
    /// Its id.
    pub id: OrgId,
    /// Short unique name (slug).
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// Whether this is the operator org, whose admins may create other orgs.
    pub operator: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A user or service identity as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PrincipalRecord {
    /// Its id.
    pub id: PrincipalId,
    /// Its org.
    pub org_id: OrgId,
    /// Person or service.
    pub kind: PrincipalKind,
    /// Unique in the org: an email address for users, a slug for services.
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// The most a token of this principal may carry.
    pub max_scope: Scope,
    /// Deactivated principals cannot authenticate; their tokens were revoked.
    pub active: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// An API token's metadata; the secret is never stored or shown again after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Its id.
    pub id: TokenId,
    /// Whose token it is.
    pub principal_id: PrincipalId,
    /// A label chosen at creation.
    pub name: String,
    /// What it may do (further limited by the principal's `max_scope`).
    pub scope: Scope,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: PrincipalId,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Roughly when it was last used (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
}

/// A token just created: the only time its secret is available.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// The token's metadata.
    #[serde(flatten)]
    pub token: ApiToken,
    /// The bearer secret. Shown once; store it now.
    pub secret: String,
}

/// A folder in an org's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Folder {
    /// Its id.
    pub id: FolderId,
    /// Its parent; absent only for the org's root folder.
    pub parent_id: Option<FolderId>,
    /// Its name among its siblings (empty for the root).
    pub name: String,
    /// Its full path from the root, such as `/finance/refunds`.
    pub path: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Whether an app is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// In use: revisions may be pushed.
    Active,
    /// Retired: kept for history, no new revisions.
    Archived,
}

impl AppStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// An app: a governed unit that builders push revisions of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct App {
    /// Its id.
    pub id: AppId,
    /// The folder it lives in.
    pub folder_id: FolderId,
    /// Unique name in the org; must match `[app].name` in its manifest.
    pub name: String,
    /// The accountable owner.
    pub owner_id: PrincipalId,
    /// Sensitivity set by IT; a manifest may raise it, never lower it.
    pub sensitivity: Sensitivity,
    /// Active or archived.
    pub status: AppStatus,
    /// Free text.
    pub description: Option<String>,
    /// Digest of the latest revision, if any.
    pub head_revision: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// What the pushing client says about the AI that produced a revision. All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provenance {
    /// The coding agent, such as `claude-code` or `cursor`.
    pub agent: Option<String>,
    /// The model, such as `claude-sonnet-4`.
    pub model: Option<String>,
    /// Ids of the prompts that produced the change.
    #[serde(default)]
    pub prompt_ids: Vec<String>,
}

/// An immutable, content-addressed revision of an app.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Revision {
    /// The app.
    pub app_id: AppId,
    /// SHA-256 (hex) of the canonical archive: the revision's id.
    pub digest: String,
    /// 1 for the first revision of the app, then 2, 3, …
    pub number: i64,
    /// The revision this one was made from.
    pub parent: Option<String>,
    /// Who pushed it.
    pub author_id: PrincipalId,
    /// That principal's name (email for users).
    pub author_name: String,
    /// When it was pushed.
    pub created_at: Timestamp,
    /// AI provenance as reported by the client.
    pub provenance: Provenance,
    /// A message from the pusher.
    pub message: Option<String>,
    /// Number of entries.
    pub file_count: i64,
    /// Bytes of content.
    pub content_bytes: i64,
    /// Bytes of the stored (compressed) archive.
    pub archive_bytes: i64,
    /// The validated manifest.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
}

/// Where a secret lives; a secret on a folder is visible to every app below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretScopeKind {
    /// The whole organization.
    Org,
    /// A folder and everything below it.
    Folder,
    /// One app.
    App,
}

impl SecretScopeKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Folder => "folder",
            Self::App => "app",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "org" => Some(Self::Org),
            "folder" => Some(Self::Folder),
            "app" => Some(Self::App),
            _ => None,
        }
    }
}

/// A secret's metadata. Values are never part of any record the API returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretMeta {
    /// Its id.
    pub id: crate::SecretId,
    /// Org, folder or app.
    pub scope_kind: SecretScopeKind,
    /// The org, folder or app id it is scoped to.
    pub scope_id: String,
    /// Its name within the scope.
    pub name: String,
    /// The version reads return.
    pub current_version: i64,
    /// Who created it.
    pub created_by: PrincipalId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When the current version was written (the last rotation).
    pub last_rotated_at: Timestamp,
    /// Who wrote the current version.
    pub last_rotated_by: PrincipalId,
    /// When a component last read it.
    pub last_used_at: Option<Timestamp>,
    /// Rotation reminder: the current version is due for rotation after this many days.
    pub rotate_every_days: Option<i64>,
    /// Whether the reminder is due now.
    pub rotation_due: bool,
}

/// Where a revision's scan stands. Scans run in the background after each push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is scanning it.
    Running,
    /// Finished; findings are stored.
    Done,
    /// Gave up after repeated errors; the revision cannot be released until it is rescanned.
    Failed,
}

impl ScanStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The scan of one revision: its state and what it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScanRecord {
    /// The app.
    pub app_id: AppId,
    /// The revision's digest.
    pub digest: String,
    /// Where it stands.
    pub status: ScanStatus,
    /// When the push queued it.
    pub queued_at: Timestamp,
    /// When a worker last started it.
    pub started_at: Option<Timestamp>,
    /// When it finished or failed.
    pub finished_at: Option<Timestamp>,
    /// How many times a worker started it.
    pub attempts: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// The scanner and rule set that produced the findings.
    pub scanner: Option<String>,
    /// Files read.
    pub files_scanned: Option<i64>,
    /// Bytes read.
    pub bytes_scanned: Option<i64>,
    /// Time the scan took in the worker.
    pub duration_ms: Option<i64>,
}

/// One stored finding of a revision's scan. Holds no secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanFinding {
    /// Which analysis found it (`secret`).
    pub kind: String,
    /// The rule.
    pub rule_id: String,
    /// What the rule detects.
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// File in the revision.
    pub path: String,
    /// 1-based start line.
    pub line: i64,
    /// 1-based start column.
    pub column: i64,
    /// 1-based end line.
    pub end_line: i64,
    /// 1-based column just past the end.
    pub end_column: i64,
    /// Keyed fingerprint of the secret; suppressions match on it.
    pub fingerprint: Option<String>,
    /// A masked preview: at most a few leading characters.
    pub preview: Option<String>,
}

/// A decision to accept one finding for a while: who, why, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Suppression {
    /// Its id.
    pub id: crate::SuppressionId,
    /// The app it applies to.
    pub app_id: AppId,
    /// Matches findings with this fingerprint (one secret, wherever it appears in the app).
    pub fingerprint: Option<String>,
    /// With `path`: matches this rule's findings in this file.
    pub rule_id: Option<String>,
    /// See `rule_id`.
    pub path: Option<String>,
    /// Why the finding is accepted.
    pub reason: String,
    /// When it stops applying.
    pub expires_at: Timestamp,
    /// Who made it.
    pub created_by: PrincipalId,
    /// When.
    pub created_at: Timestamp,
    /// When it was revoked early, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it.
    pub revoked_by: Option<PrincipalId>,
}

impl Suppression {
    /// Whether it applies at `now` to a finding.
    pub fn covers(&self, finding: &ScanFinding, now: Timestamp) -> bool {
        if self.revoked_at.is_some() || self.expires_at <= now {
            return false;
        }
        match (&self.fingerprint, &self.rule_id, &self.path) {
            (Some(fp), _, _) => finding.fingerprint.as_deref() == Some(fp.as_str()),
            (None, Some(rule), Some(path)) => &finding.rule_id == rule && &finding.path == path,
            _ => false,
        }
    }
}

/// The independent review of a revision, with a signed attestation of its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReviewRecord {
    /// `model` (a model behind an OpenAI-compatible endpoint) or `deterministic` (the scanners' rules).
    pub reviewer: String,
    /// The reviewing model.
    pub model: Option<String>,
    /// The model the revision's provenance names as its author.
    pub generating_model: Option<String>,
    /// `approve`, `reject`, or `error` (no valid review: never releasable).
    pub decision: String,
    /// The reviewer's summary, or why the review failed.
    pub summary: String,
    /// What the reviewer found.
    #[schema(value_type = Vec<Object>)]
    pub findings: serde_json::Value,
    /// The statement that was signed (canonical JSON).
    pub attestation: String,
    /// Ed25519 signature (hex) over `gatehouse-review-v1 NUL attestation`, by the key at
    /// `/api/v1/audit/public-key`.
    pub signature: String,
    /// The signing key's id.
    pub key_id: String,
    /// When.
    pub created_at: Timestamp,
}
