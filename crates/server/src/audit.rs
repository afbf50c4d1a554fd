//! The audit log in the server: keys, the request facts every record carries, recording of
//! denials and failed changes, checkpoints, retention and verification.
//!
//! Successful changes are recorded by the store inside their own transactions (see
//! `gatehouse_store::AuditCtx`). What the store never sees — a request refused before it reached
//! the store, or a change that failed — is recorded here, by a layer around every route.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use ed25519_dalek::VerifyingKey;
use gatehouse_audit::{CheckpointSigner, Tamper, Verifier, VerifyReport};
use gatehouse_core::audit::{Actor, ActorKind, ActorRef, AuditDraft, Outcome, ResourceRef};
use gatehouse_core::{OrgId, Principal, PrincipalKind, Timestamp};
use gatehouse_store::{AuditCtx, Store, StoreError};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::AppState;

/// Why a key file (audit or access-token keys) could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("key file `{path}`: {message}")]
pub struct KeyFileError {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// The checkpoint signing key and the HMAC key for sensitive details, from a 0600 file outside
/// the database: whoever can rewrite the database cannot re-sign what they changed.
pub struct AuditKeys {
    signer: CheckpointSigner,
    hmac_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys").field("signer", &self.signer).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    checkpoint_ed25519_seed: String,
    hmac_sha256_key: String,
}

impl AuditKeys {
    /// Loads the key file, creating it (mode 0600) on first start.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyFileError> {
        let err = |m: String| KeyFileError { path: path.display().to_string(), message: m };
        let decode = |s: &str| -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
            let raw = Zeroizing::new(hex::decode(s).map_err(|_| err("a key is not hex".to_owned()))?);
            let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| err("a key is not 256 bits".to_owned()))?;
            Ok(Zeroizing::new(arr))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                check_permissions(path).map_err(err)?;
                let file: KeyFile = serde_json::from_str(&text).map_err(|_| err("not a valid key file".to_owned()))?;
                if file.version != 1 {
                    return Err(err(format!("unsupported version {}", file.version)));
                }
                let seed = decode(&file.checkpoint_ed25519_seed)?;
                Ok(Self { signer: CheckpointSigner::from_seed(&seed), hmac_key: decode(&file.hmac_sha256_key)? })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = Zeroizing::new([0u8; 32]);
                let mut hmac_key = Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(seed.as_mut_slice());
                rand::rng().fill_bytes(hmac_key.as_mut_slice());
                let file = KeyFile {
                    version: 1,
                    checkpoint_ed25519_seed: hex::encode(seed.as_slice()),
                    hmac_sha256_key: hex::encode(hmac_key.as_slice()),
                };
                let text = Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| err(e.to_string()))?);
                write_private(path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
                Ok(Self { signer: CheckpointSigner::from_seed(&seed), hmac_key })
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// The public key that verifies checkpoints.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signer.verifying_key()
    }

    /// The signer.
    pub fn signer(&self) -> &CheckpointSigner {
        &self.signer
    }

    /// `hmac-sha256:<hex>` of `value` under `org`'s own key (derived, so one org's HMACs say
    /// nothing about another's).
    pub fn hmac(&self, org: &OrgId, value: &[u8]) -> String {
        let org_key = self.mac(self.hmac_key.as_slice(), org.as_str().as_bytes());
        format!("hmac-sha256:{}", hex::encode(self.mac(&org_key, value)))
    }

    /// The key under which `org`'s scan findings are fingerprinted: separate from the audit
    /// HMAC so a fingerprint cannot be matched against audit details, stable across restarts.
    pub fn scan_fingerprint_key(&self, org: &OrgId) -> [u8; 32] {
        let label = format!("scan-fingerprint:{}", org.as_str());
        let mac = self.mac(self.hmac_key.as_slice(), label.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac[..32]);
        key
    }

    fn mac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length; this cannot fail.
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
pub(crate) fn check_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("permissions are {:o}; they must be 600", mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_permissions(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// Facts about the request every record carries.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// The peer address.
    pub source: Option<String>,
    /// `user-agent`, cut to 200 characters.
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// Reads the facts from request parts.
    pub fn from_parts(parts: &axum::http::request::Parts) -> Self {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.to_owned());
        Self {
            request_id: header("x-request-id"),
            source: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .or_else(|| parts.extensions.get::<ConnectInfo<crate::tls::Peer>>().map(|c| c.0.addr.ip().to_string())),
            user_agent: header("user-agent").map(|s| s.chars().take(200).collect()),
        }
    }

    /// The audit context of `principal` making this request.
    pub fn ctx(&self, principal: &Principal) -> AuditCtx {
        AuditCtx {
            org_id: principal.org_id.clone(),
            actor: actor_of(principal),
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

/// The audit actor for an authenticated principal.
pub fn actor_of(p: &Principal) -> Actor {
    Actor {
        who: ActorRef {
            kind: match p.kind {
                PrincipalKind::User => ActorKind::User,
                PrincipalKind::Service => ActorKind::Service,
            },
            id: p.id.to_string(),
            name: p.name.clone(),
        },
        on_behalf_of: Vec::new(),
    }
}

/// What the authentication step learned, for the layer that records refusals and failures.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub principal: Option<Principal>,
    /// Keyed hash of a token that failed to authenticate, so investigators can ask whether a
    /// given leaked token was tried, without the log holding it.
    pub rejected_token: Option<Vec<u8>>,
    /// Whether the handler made an authorization decision (a response without one is withheld).
    pub authorized: bool,
    /// The deciding policies and reason of a denial, for the record.
    pub denial: Option<serde_json::Value>,
}

/// Shared between the layer and the extractor for one request.
#[derive(Clone, Default)]
pub(crate) struct Slot(pub Arc<Mutex<Seen>>);

/// The action a mutating route performs, by method and route template; `None` for reads.
pub fn action_for(method: &Method, route: &str) -> Option<&'static str> {
    let m = method.as_str();
    Some(match (m, route) {
        ("POST", "/api/v1/orgs") => "org.create",
        ("POST", "/api/v1/folders") => "folder.create",
        ("PATCH", "/api/v1/folders/{id}") => "folder.update",
        ("DELETE", "/api/v1/folders/{id}") => "folder.delete",
        ("POST", "/api/v1/apps") => "app.create",
        ("PATCH", "/api/v1/apps/{app}") => "app.update",
        ("POST", "/api/v1/apps/{app}/revisions") => "app.revision.push",
        ("POST", "/api/v1/principals") => "principal.create",
        ("PATCH", "/api/v1/principals/{id}") => "principal.update",
        ("POST", "/api/v1/tokens") => "token.create",
        ("DELETE", "/api/v1/tokens/{id}") => "token.revoke",
        ("POST", "/api/v1/secrets") => "secret.set",
        ("DELETE", "/api/v1/secrets/{id}") => "secret.delete",
        ("POST", "/api/v1/vault/key/rotate") => "vault.key.rotate",
        ("POST", "/api/v1/vault/key/destroy") => "vault.key.destroy",
        ("POST", "/api/v1/audit/events") => "audit.events.append",
        ("POST", "/api/v1/audit/match") => "audit.match",
        ("POST", "/api/v1/apps/{app}/revisions/{rev}/scan") => "app.revision.rescan",
        ("PUT", "/api/v1/scan-policy") | ("PUT", "/api/v1/folders/{folder}/scan-policy") => "scan.policy.set",
        ("POST", "/api/v1/apps/{app}/suppressions") => "app.suppression.create",
        ("PUT", "/api/v1/review-policy") => "review.policy.set",
        ("DELETE", "/api/v1/apps/{app}/suppressions/{id}") => "app.suppression.revoke",
        ("POST", "/api/v1/principals/{id}/client-secrets") => "principal.client_secret.create",
        ("POST", "/oauth/token") => "auth.token.issue",
        ("PUT", "/api/v1/roles/{name}") => "role.define",
        ("DELETE", "/api/v1/roles/{name}") => "role.delete",
        ("POST", "/api/v1/role-bindings") => "role.grant",
        ("DELETE", "/api/v1/role-bindings/{id}") => "role.revoke",
        ("POST", "/api/v1/groups") => "group.create",
        ("DELETE", "/api/v1/groups/{id}") => "group.delete",
        ("PUT", "/api/v1/groups/{id}/members/{principal}") => "group.member.add",
        ("DELETE", "/api/v1/groups/{id}/members/{principal}") => "group.member.remove",
        ("PUT", "/api/v1/guardrails/{name}") => "guardrail.set",
        ("DELETE", "/api/v1/guardrails/{name}") => "guardrail.delete",
        ("POST", "/api/v1/scim-tokens") => "scim.token.create",
        ("DELETE", "/api/v1/scim-tokens/{id}") => "scim.token.revoke",
        ("DELETE", "/api/v1/sessions/{id}") => "session.revoke",
        ("PUT", "/api/v1/client-ca") => "mtls.ca.set",
        ("DELETE", "/api/v1/client-ca") => "mtls.ca.remove",
        ("POST", "/auth/logout") => "auth.logout",
        ("POST", "/auth/cli/token") => "auth.login",
        ("POST", "/scim/v2/Users") => "scim.user.create",
        ("PUT", "/scim/v2/Users/{id}") => "scim.user.replace",
        ("PATCH", "/scim/v2/Users/{id}") => "scim.user.patch",
        ("DELETE", "/scim/v2/Users/{id}") => "scim.user.delete",
        ("POST", "/scim/v2/Groups") => "scim.group.create",
        ("PUT", "/scim/v2/Groups/{id}") => "scim.group.replace",
        ("PATCH", "/scim/v2/Groups/{id}") => "scim.group.patch",
        ("DELETE", "/scim/v2/Groups/{id}") => "scim.group.delete",
        ("GET", _) | ("HEAD", _) | ("OPTIONS", _) => return None,
        _ => "api.unknown",
    })
}

/// Records what the store could not: requests refused for lack of a valid credential or scope,
/// and changes that failed. Reads that succeed are not recorded (they are not changes).
pub(crate) async fn record_outcomes(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let (mut parts, body) = req.into_parts();
    let meta = RequestMeta::from_parts(&parts);
    parts.extensions.insert(meta.clone());
    let mut res = next.run(Request::from_parts(parts, body)).await;
    // Every API route decides authorization before it answers; one that did not is a bug, and
    // its answer is withheld rather than served (the route walk in the tests keeps this rare).
    if res.status().is_success()
        && route.as_deref().is_some_and(|r| r.starts_with("/api/") && r != "/api/v1/openapi.json")
        && !slot.0.lock().unwrap_or_else(|p| p.into_inner()).authorized
    {
        tracing::error!(route = ?route, method = %method, "a route answered without an authorization decision");
        res = axum::response::IntoResponse::into_response(crate::error::ApiError::AuthorizationMissing);
    }
    let status = res.status();
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let change = action_for(&method, &route);
    let denied = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    if !(denied || (change.is_some() && (status.is_client_error() || status.is_server_error()))) {
        return res;
    }
    let seen = std::mem::take(&mut *slot.0.lock().unwrap_or_else(|p| p.into_inner()));
    let action = match (status, change) {
        (StatusCode::UNAUTHORIZED, _) => "auth.token.reject",
        (_, Some(a)) => a,
        (_, None) => "api.read",
    };
    let outcome = if denied { Outcome::Denied } else { Outcome::Failed };
    let (org, actor) = match &seen.principal {
        Some(p) => (p.org_id.clone(), actor_of(p)),
        None => match state.store.operator_org().await {
            Ok(org) => (
                org.id,
                Actor {
                    who: ActorRef {
                        kind: ActorKind::Anonymous,
                        id: "anonymous".to_owned(),
                        name: "anonymous".to_owned(),
                    },
                    on_behalf_of: Vec::new(),
                },
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot record a refused request: no operator org");
                return res;
            }
        },
    };
    let mut details = serde_json::json!({ "method": method.as_str(), "route": route, "status": status.as_u16() });
    if let Some(denial) = &seen.denial {
        details["authorization"] = denial.clone();
    }
    if let Some(token) = &seen.rejected_token {
        details["token_hmac"] = serde_json::Value::String(state.audit.hmac(&org, token));
    }
    let problem = res.extensions().get::<crate::error::ProblemCode>().map(|c| c.0);
    // An authorization denial names what was denied, not just the route it came through.
    let (action, resource) = match &seen.denial {
        Some(d) if status == StatusCode::FORBIDDEN => {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&d["action"]),
                ResourceRef {
                    kind: text(&d["resource"]["kind"]),
                    id: text(&d["resource"]["id"]),
                    path: Some(text(&d["resource"]["name"])),
                },
            )
        }
        _ => (action.to_owned(), ResourceRef { kind: "route".to_owned(), id: route, path: None }),
    };
    let draft = AuditDraft {
        org_id: org,
        actor,
        action,
        resource,
        outcome,
        reason: problem.map(str::to_owned),
        request_id: meta.request_id,
        source: meta.source,
        user_agent: meta.user_agent,
        details,
    };
    // Through the group-commit batcher: a flood of refused requests shares commits instead of
    // costing one each, and each is still on disk before its answer goes out.
    if state.batcher.append(vec![draft]).await.is_err() {
        // The request already failed; the response stands. The log says why it is missing.
        tracing::error!("could not record a refused or failed request");
    }
    res
}

/// A range of an org's chain, clamped to the retained records, with the hash its first record
/// follows.
pub struct ChainRange {
    /// First sequence number (past the retention anchor).
    pub from: u64,
    /// Last sequence number (at most the head); below `from` when the range is empty.
    pub to: u64,
    /// The hash record `from` follows: the retention anchor, or the stored hash of record
    /// `from - 1`; `None` when that record is missing.
    pub anchor_hash: Option<String>,
}

/// The retained part of `from..=to` (the whole retained chain by default).
pub async fn chain_range(
    store: &Store,
    org: &OrgId,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<ChainRange, StoreError> {
    let head = store.audit_head(org).await?;
    let from = from.unwrap_or(head.anchor_seq + 1).max(head.anchor_seq + 1);
    let to = to.unwrap_or(head.seq).min(head.seq);
    let anchor_hash = if from == head.anchor_seq + 1 {
        Some(head.anchor_hash)
    } else if from > to {
        None
    } else {
        store.audit_range(org, from - 1, from - 1, 1).await?.pop().map(|r| r.hash)
    };
    Ok(ChainRange { from, to, anchor_hash })
}

/// Verifies `org`'s chain over `from..=to` (the whole retained chain by default), page by page
/// in bounded memory, and names the first bad sequence number.
pub async fn verify_org(
    store: &Store,
    key: &VerifyingKey,
    org: &OrgId,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Result<VerifyReport, Tamper>, StoreError> {
    const PAGE: i64 = 5000;
    let ChainRange { from, to, anchor_hash } = chain_range(store, org, from, to).await?;
    if from > to {
        return Ok(Ok(VerifyReport { first_seq: 0, last_seq: 0, records: 0, checkpoints: 0, unsigned_tail: 0 }));
    }
    // Starting mid-chain, the anchor is the previous record's hash as stored; a tampered anchor
    // still fails, at the first checkpoint after it.
    let Some(anchor_hex) = anchor_hash else {
        return Ok(Err(Tamper {
            seq: from - 1,
            kind: gatehouse_audit::TamperKind::Gap,
            detail: "the record before the range is missing".to_owned(),
        }));
    };
    let anchor: gatehouse_audit::Hash = gatehouse_audit::parse_hash(&anchor_hex).unwrap_or(gatehouse_audit::GENESIS);
    let checkpoints = store.audit_checkpoints(org, from.saturating_sub(1), to).await?;
    let mut cps = checkpoints.iter().peekable();
    let mut v = Verifier::new(key, &anchor);
    v.expect_first(from);
    // The retained checkpoint ending at the anchor: its signature and head vouch for the anchor.
    while let Some(cp) = cps.next_if(|c| c.last_seq < from) {
        if let Err(t) = v.checkpoint(cp) {
            return Ok(Err(t));
        }
        if cp.last_seq + 1 == from && cp.head_hash != anchor_hex {
            return Ok(Err(Tamper {
                seq: from,
                kind: gatehouse_audit::TamperKind::BrokenLink,
                detail: "the retained anchor differs from its signed checkpoint".to_owned(),
            }));
        }
    }
    // The next page is read (and parsed) while this one is checked.
    let fetch = |from: u64| {
        let (store, org) = (store.clone(), org.clone());
        tokio::spawn(async move { store.audit_range(&org, from, to, PAGE).await })
    };
    let mut pending = Some(fetch(from));
    while let Some(task) = pending.take() {
        let page =
            task.await.map_err(|_| StoreError::Corrupt("verification page read was interrupted".to_owned()))??;
        let Some(last) = page.last().map(|r| r.seq) else { break };
        if last < to {
            pending = Some(fetch(last + 1));
        }
        for r in &page {
            if let Err(t) = v.record(r) {
                return Ok(Err(t));
            }
            while let Some(cp) = cps.next_if(|c| c.last_seq <= r.seq) {
                if let Err(t) = v.checkpoint(cp) {
                    return Ok(Err(t));
                }
            }
        }
    }
    let expected_next = to + 1;
    if v.next_seq() != Some(expected_next) {
        let missing = v.next_seq().unwrap_or(from);
        return Ok(Err(Tamper {
            seq: missing,
            kind: gatehouse_audit::TamperKind::Gap,
            detail: format!("records {missing}..={to} are missing"),
        }));
    }
    for cp in cps {
        if let Err(t) = v.checkpoint(cp) {
            return Ok(Err(t));
        }
    }
    Ok(Ok(v.finish()))
}

/// Signs checkpoints for orgs with records past their last checkpoint, once `every` records are
/// unsigned or the oldest unsigned one waited `interval`. Returns how many were signed.
pub async fn checkpoint_once(
    store: &Store,
    keys: &AuditKeys,
    every: u64,
    interval: Duration,
    waiting: &mut HashMap<OrgId, Instant>,
) -> Result<usize, StoreError> {
    let mut signed = 0;
    for (org, first, head) in store.audit_unsigned().await? {
        let since = *waiting.entry(org.clone()).or_insert_with(Instant::now);
        if head - first + 1 < every && since.elapsed() < interval {
            continue;
        }
        // Large backlogs are signed in pieces of `every`.
        let mut lo = first;
        while lo <= head {
            let hi = head.min(lo + every.max(1) - 1);
            let hashes = store.audit_hashes(&org, lo, hi).await?;
            let decoded: Vec<gatehouse_audit::Hash> =
                hashes.iter().filter_map(|(_, h)| gatehouse_audit::parse_hash(h)).collect();
            if decoded.len() as u64 != hi - lo + 1 || hashes.first().map(|h| h.0) != Some(lo) {
                // A hole where records should be: do not sign over it; verification reports it.
                tracing::error!(%org, lo, hi, "audit records missing; checkpoint not signed");
                break;
            }
            if let Some(cp) = keys.signer().sign(&org, lo, &decoded, Timestamp::now()) {
                store.insert_checkpoint(&cp).await?;
                signed += 1;
            }
            lo = hi + 1;
        }
        waiting.remove(&org);
    }
    Ok(signed)
}

/// Removes records older than `retention` from every org, whole checkpoint ranges at a time.
pub async fn prune_once(store: &Store, retention: Duration) -> Result<u64, StoreError> {
    let cutoff = Timestamp::from_millis(Timestamp::now().as_millis() - retention.as_millis() as i64);
    store.prune_audit(cutoff).await
}

/// Starts the checkpoint and retention loops. They stop when the returned handle is dropped
/// or aborted.
pub fn spawn_maintenance(
    store: Store,
    keys: Arc<AuditKeys>,
    settings: crate::config::AuditSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut waiting = HashMap::new();
        let tick = settings.checkpoint_interval.min(Duration::from_secs(1));
        let retention = Duration::from_secs(u64::from(settings.retention_days) * 86_400);
        let mut last_prune: Option<Instant> = None;
        loop {
            if let Err(e) =
                checkpoint_once(&store, &keys, settings.checkpoint_every, settings.checkpoint_interval, &mut waiting)
                    .await
            {
                tracing::warn!(error = %e, "audit checkpoint failed; retrying");
            }
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                if let Err(e) = store.audit_partitions_ahead(2).await {
                    tracing::warn!(error = %e, "could not create audit partitions ahead; records go to the default partition");
                }
                match prune_once(&store, retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "audit retention pruned old records"),
                    Err(e) => tracing::warn!(error = %e, "audit retention failed; retrying"),
                }
                last_prune = Some(Instant::now());
            }
            tokio::time::sleep(tick).await;
        }
    })
}

/// Where an exported file's first line says the chain starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always `gatehouse-audit-export-v1`.
    pub format: String,
    /// The org.
    pub org_id: OrgId,
    /// The first record in the file.
    pub first_seq: u64,
    /// The last record in the file (below `first_seq` when the range is empty); a file that
    /// ends earlier was cut short.
    pub last_seq: u64,
    /// The hash the first exported record follows.
    pub anchor_hash: String,
    /// Hex Ed25519 public key the checkpoints should verify under (informational: a verifier
    /// must use a key it trusts, not the one the file names).
    pub public_key: String,
}

/// One line of an exported file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// The first line.
    Header(ExportHeader),
    /// A record.
    Record(Box<gatehouse_core::audit::AuditRecord>),
    /// A checkpoint, after the record it ends at.
    Checkpoint(gatehouse_audit::Checkpoint),
}

/// Verifies an exported NDJSON file with only a public key.
pub fn verify_export(text: &str, key: &VerifyingKey) -> Result<Result<VerifyReport, Tamper>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header = match lines.next() {
        Some((_, l)) => match serde_json::from_str::<ExportLine>(l) {
            Ok(ExportLine::Header(h)) => h,
            _ => return Err("line 1: expected the export header".to_owned()),
        },
        None => return Err("the file is empty".to_owned()),
    };
    let anchor = gatehouse_audit::parse_hash(&header.anchor_hash)
        .ok_or_else(|| "header: anchor_hash is not 32 hex bytes".to_owned())?;
    let mut v = Verifier::new(key, &anchor);
    v.expect_first(header.first_seq);
    for (i, line) in lines {
        match serde_json::from_str::<ExportLine>(line) {
            Ok(ExportLine::Record(r)) => {
                if let Err(t) = v.record(&r) {
                    return Ok(Err(t));
                }
            }
            Ok(ExportLine::Checkpoint(cp)) => {
                if let Err(t) = v.checkpoint(&cp) {
                    return Ok(Err(t));
                }
            }
            Ok(ExportLine::Header(_)) => return Err(format!("line {}: a second header", i + 1)),
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    // A file cut short at a line boundary still chains; the header says where it must end.
    if header.last_seq >= header.first_seq && v.next_seq() != Some(header.last_seq + 1) {
        let missing = v.next_seq().unwrap_or(header.first_seq);
        return Ok(Err(Tamper {
            seq: missing,
            kind: gatehouse_audit::TamperKind::Gap,
            detail: format!("records {missing}..={} are missing from the file", header.last_seq),
        }));
    }
    Ok(Ok(v.finish()))
}

/// [`verify_export`] with the public key given as hex, as `gatehouse audit public-key` prints it.
pub fn verify_export_hex(text: &str, key_hex: &str) -> Result<Result<VerifyReport, Tamper>, String> {
    let bytes =
        gatehouse_audit::parse_hash(key_hex).ok_or_else(|| "the public key must be 64 hex digits".to_owned())?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_owned())?;
    verify_export(text, &key)
}

/// Group commit for records that accompany no change (app events, refusals): batches arriving
/// together share one transaction per org.
#[derive(Clone)]
pub struct Batcher {
    tx: tokio::sync::mpsc::Sender<(Vec<gatehouse_core::audit::AuditDraft>, tokio::sync::oneshot::Sender<bool>)>,
}

impl Batcher {
    /// Starts the committing task over `store`.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(
            Vec<gatehouse_core::audit::AuditDraft>,
            tokio::sync::oneshot::Sender<bool>,
        )>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first.1];
                let mut drafts = first.0;
                while drafts.len() < 5000 {
                    match rx.try_recv() {
                        Ok((d, w)) => {
                            drafts.extend(d);
                            waiters.push(w);
                        }
                        Err(_) => break,
                    }
                }
                let ok = match store.append_audit(drafts).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "app events could not be recorded");
                        false
                    }
                };
                for w in waiters {
                    let _ = w.send(ok);
                }
            }
        });
        Self { tx }
    }

    /// Appends `drafts` and returns once they are durable.
    pub async fn append(&self, drafts: Vec<gatehouse_core::audit::AuditDraft>) -> Result<(), crate::ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send((drafts, tx)).await.map_err(|_| crate::ApiError::AuditUnavailable)?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(crate::ApiError::AuditUnavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutating_operation_has_an_action() {
        let doc = crate::openapi();
        let mut n = 0;
        for (path, item) in &doc.paths.paths {
            for (m, op) in [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if op.is_some() {
                    let action = action_for(&m, path);
                    assert!(action.is_some_and(|a| a != "api.unknown"), "{m} {path} has no audit action");
                    n += 1;
                }
            }
        }
        assert!(n >= 17, "{n}");
        assert_eq!(action_for(&Method::GET, "/api/v1/apps"), None);
    }

    proptest::proptest! {
        // Exported files come from anywhere: any text gets an answer, never a panic.
        #[test]
        fn any_export_file_gets_an_answer(text in ".{0,400}", lines in proptest::collection::vec("[ -~]{0,80}", 0..6)) {
            let key = hex::encode(CheckpointSigner::from_seed(&[1; 32]).verifying_key().as_bytes());
            let _ = verify_export_hex(&text, &key);
            let header = r#"{"type":"header","format":"gatehouse-audit-export-v1","org_id":"org_0190a0b0c0d0e0f00000000000000000","anchor_hash":"0000000000000000000000000000000000000000000000000000000000000000","public_key":""}"#;
            let _ = verify_export_hex(&format!("{header}\n{}", lines.join("\n")), &key);
            let _ = verify_export_hex(&text, &text);
        }
    }

    #[test]
    fn hmacs_are_per_org_and_keyed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AuditKeys::open_or_create(&dir.path().join("k.json")).unwrap();
        let (a, b) = (OrgId::generate(), OrgId::generate());
        assert_eq!(keys.hmac(&a, b"x"), keys.hmac(&a, b"x"));
        assert_ne!(keys.hmac(&a, b"x"), keys.hmac(&b, b"x"));
        assert!(keys.hmac(&a, b"x").starts_with("hmac-sha256:"));
        // Reopened from the file: the same keys.
        let again = AuditKeys::open_or_create(&dir.path().join("k.json")).unwrap();
        assert_eq!(again.hmac(&a, b"x"), keys.hmac(&a, b"x"));
        assert_eq!(again.verifying_key(), keys.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join("k.json");
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(AuditKeys::open_or_create(&p).unwrap_err().to_string().contains("600"));
        }
    }
}
