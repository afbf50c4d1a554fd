//! Server configuration: defaults, then a `gatehouse.toml` file, then `GATEHOUSE_*` environment
//! variables, then command-line flags (applied by the binary), each overriding the last.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use gatehouse_bundle::Limits;

/// The configuration file format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// The effective configuration of `gatehouse serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version; must be 1.
    pub version: u32,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the embedded SQLite database lives when no `database_url` is set.
    pub data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://…`); when set, SQLite is not used. Holds a secret.
    pub database_url: Option<String>,
    /// Most PostgreSQL connections per process.
    pub database_max_connections: u32,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Size limits.
    pub limits: LimitsConfig,
    /// The first org and admin, created once on an empty database.
    pub bootstrap: BootstrapConfig,
    /// Secrets and their keys.
    pub vault: VaultSettings,
    /// The audit log: checkpoint signing, retention and SIEM exports.
    pub audit: AuditSettings,
    /// Scanning of pushed revisions.
    pub scan: ScanSettings,
    /// The independent reviewer.
    pub review: ReviewSettings,
    /// Service-identity credentials.
    pub identity: IdentitySettings,
    /// HTTPS (and client certificates for service identities); plain HTTP when unset.
    pub tls: Option<TlsSettings>,
}

/// The independent reviewer of each revision. Without `url` and `model`, the deterministic
/// reviewer (the scanners' rules) runs and its result is attested like a model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewSettings {
    /// An OpenAI-compatible API base, such as `https://api.openai.com/v1`.
    pub url: Option<String>,
    /// The reviewing model.
    pub model: Option<String>,
    /// A file holding the API key (read at start; never logged).
    pub api_key_file: Option<PathBuf>,
    /// How long one review may take.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Refuse a review by the same model that wrote the revision (from its provenance).
    pub require_different_model: bool,
    /// The organization's review policy, in words, given to the model.
    pub policy: String,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        Self {
            url: None,
            model: None,
            api_key_file: None,
            timeout: Duration::from_secs(120),
            require_different_model: true,
            policy: "Customer, employee and financial data may only be read through the integrations the manifest \
                     declares and may not be sent anywhere else. Credentials come from the vault, never from code. \
                     Authentication and authorization checks may not be weakened or removed."
                .to_owned(),
        }
    }
}

/// How pushed revisions are scanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    /// A gitleaks-format rule file used instead of the built-in rules (put
    /// `[extend] useDefault = true` in it to add to them).
    pub rules_file: Option<PathBuf>,
    /// A claimed scan whose worker has not finished after this long is handed to another.
    #[serde(with = "humantime_serde_compat")]
    pub lease: Duration,
    /// After this many started attempts a scan is marked failed (and its revision cannot be released).
    pub max_attempts: u32,
    /// Files larger than this are skipped and listed as skipped.
    pub max_file_bytes: u64,
    /// The advisory index (from `gatehouse advisories import`) for dependency checks; without
    /// one, dependencies are checked for everything but known vulnerabilities.
    pub advisories: Option<PathBuf>,
    /// Further code-pattern rules (ast-grep YAML), added to the built-in ones.
    pub pattern_rules: Option<PathBuf>,
    /// Scans this server runs at once (a slow model review holds one worker, not the queue).
    pub workers: u32,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            rules_file: None,
            lease: Duration::from_secs(600),
            max_attempts: 3,
            max_file_bytes: 10 * 1024 * 1024,
            advisories: None,
            pattern_rules: None,
            workers: 2,
        }
    }
}

/// Credentials Gatehouse issues to service identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// The access-token signing key file (created with mode 0600);
    /// `<data_dir>/token-keys.json` when unset.
    pub token_key_file: Option<PathBuf>,
    /// The `iss` of access tokens (use the server's public URL).
    pub issuer: String,
    /// How long a client-credentials access token lives, at most `15m`.
    #[serde(with = "humantime_serde_compat")]
    pub access_token_ttl: Duration,
    /// The server's external URL (`https://gatehouse.example.com`), used in SCIM resource
    /// locations and sign-in redirects; when unset, `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// Single sign-on: one OpenID Connect provider per organization.
    pub sso: Vec<SsoSettings>,
}

/// The server's certificate and key, for HTTPS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, PEM.
    pub cert_file: PathBuf,
    /// The private key, PEM.
    pub key_file: PathBuf,
}

/// Single sign-on for one organization with an OpenID Connect provider (authorization code
/// flow with PKCE). Gatehouse keeps no passwords and does no MFA itself; it reads the provider's
/// `amr`/`acr` into the authorization context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoSettings {
    /// The organization (by name) whose users sign in through this provider.
    pub org: String,
    /// The provider's discovery document: `<issuer>/.well-known/openid-configuration`.
    pub discovery_url: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// A file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Where the provider sends the browser back; `<identity.public_url>/auth/callback` by default.
    pub redirect_url: Option<String>,
    /// Where the provider sends the browser after signing out; `<public_url>/auth/logged-out` by default.
    pub post_logout_redirect_url: Option<String>,
    /// Scopes asked for.
    #[serde(default = "default_sso_scopes")]
    pub scopes: Vec<String>,
    /// Whether a person the provider vouches for but Gatehouse does not know gets a user on first
    /// sign-in (with no roles). Off: users come from SCIM or the API.
    #[serde(default)]
    pub jit_users: bool,
    /// The claim listing the person's groups; when set, group memberships follow it at each
    /// sign-in (groups are matched by name or external id; none are created).
    pub groups_claim: Option<String>,
    /// `amr` values that count as multi-factor authentication.
    #[serde(default = "default_mfa_amr")]
    pub mfa_amr: Vec<String>,
    /// `acr` values that count as multi-factor authentication.
    #[serde(default)]
    pub mfa_acr: Vec<String>,
    /// A session ends after this long without a request.
    #[serde(default = "default_session_idle", with = "humantime_serde_compat")]
    pub session_idle: Duration,
    /// A session ends this long after sign-in, whatever happens.
    #[serde(default = "default_session_absolute", with = "humantime_serde_compat")]
    pub session_absolute: Duration,
}

fn default_sso_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(str::to_owned).to_vec()
}

fn default_mfa_amr() -> Vec<String> {
    vec!["mfa".to_owned()]
}

fn default_session_idle() -> Duration {
    Duration::from_secs(3600)
}

fn default_session_absolute() -> Duration {
    Duration::from_secs(12 * 3600)
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            token_key_file: None,
            issuer: "gatehouse".to_owned(),
            access_token_ttl: Duration::from_secs(900),
            public_url: None,
            sso: Vec::new(),
        }
    }
}

/// The audit log's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The checkpoint signing and HMAC key file (created with mode 0600), kept apart from the
    /// database; `<data_dir>/audit-keys.json` when unset.
    pub key_file: Option<PathBuf>,
    /// Sign a checkpoint once this many records are unsigned.
    pub checkpoint_every: u64,
    /// ...or once the oldest unsigned record is this old, such as `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub checkpoint_interval: Duration,
    /// Records are kept this many days, at least; older whole checkpoint ranges are pruned.
    pub retention_days: u32,
    /// SIEM exports.
    pub exports: Vec<ExportSettings>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            key_file: None,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            retention_days: 90,
            exports: Vec::new(),
        }
    }
}

/// One SIEM export: where records go, in what format, for which orgs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSettings {
    /// A unique name; the export's cursor is kept under it.
    pub name: String,
    /// Only this org (by name); every org when unset.
    pub org: Option<String>,
    /// Where to.
    #[serde(flatten)]
    pub sink: SinkSettings,
    /// `ocsf` (the default) or `native` (records as stored, chain fields included).
    #[serde(default)]
    pub format: ExportFormat,
}

/// Record format of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// OCSF 1.x events with the chain fields as record-integrity attributes.
    #[default]
    Ocsf,
    /// Gatehouse's own record JSON.
    Native,
}

/// An export's destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkSettings {
    /// Newline-delimited JSON files in `dir`, rotated at `rotate_bytes`.
    Ndjson {
        /// The directory.
        dir: PathBuf,
        /// Start a new file beyond this size.
        #[serde(default = "default_rotate_bytes")]
        rotate_bytes: u64,
    },
    /// A Splunk HTTP Event Collector.
    SplunkHec {
        /// The collector's base URL, such as `https://splunk.example:8088`.
        url: String,
        /// A file holding the HEC token (never inline here).
        token_file: PathBuf,
        /// Extra CA certificate (PEM) to trust.
        ca_file: Option<PathBuf>,
    },
    /// RFC 5424 syslog over TLS with RFC 5425 octet-counting framing.
    Syslog {
        /// `host:port` of the receiver.
        address: String,
        /// CA certificate (PEM) that signed the receiver's certificate.
        ca_file: PathBuf,
        /// Name to verify in the receiver's certificate; the host of `address` when unset.
        server_name: Option<String>,
    },
}

fn default_rotate_bytes() -> u64 {
    64 * 1024 * 1024
}

/// Where the vault's key-encryption keys live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSettings {
    /// The KEK of orgs without their own, as `backend:name` (`local:default`, `pkcs11:gatehouse-kek`).
    pub default_kek: String,
    /// Backend in which per-org keys are created when an org rotates to its own key.
    pub org_key_backend: String,
    /// The local key file (created with mode 0600); `<data_dir>/vault-keys.json` when unset.
    pub key_file: Option<PathBuf>,
    /// How long an unwrapped data key may be reused, such as `60s`; `0s` disables the cache.
    #[serde(with = "humantime_serde_compat")]
    pub dek_cache_ttl: Duration,
    /// A PKCS#11 token holding KEKs, if any.
    pub pkcs11: Option<Pkcs11Settings>,
}

/// A PKCS#11 token. The PIN comes from `pin_file` or `GATEHOUSE_PKCS11_PIN`, never from this file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Settings {
    /// The module, such as `/usr/lib/softhsm/libsofthsm2.so`.
    pub library: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file holding the user PIN.
    pub pin_file: Option<PathBuf>,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            default_kek: "local:default".to_owned(),
            org_key_backend: "local".to_owned(),
            key_file: None,
            dek_cache_ttl: Duration::from_secs(60),
            pkcs11: None,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Request and bundle limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest bundle upload (compressed), in bytes.
    pub max_bundle_bytes: u64,
    /// Largest bundle after decompression, in bytes.
    pub max_unpacked_bytes: u64,
    /// Most files in a bundle.
    pub max_bundle_files: usize,
    /// Largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// A request taking longer than this (reading its body included) is answered 408.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
}

/// The one-time bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    /// Name (slug) of the operator org.
    pub org: String,
    /// Email of its first admin.
    pub admin_email: String,
    /// Lifetime of the bootstrap token, such as `24h`.
    #[serde(with = "humantime_serde_compat")]
    pub token_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./gatehouse-data"),
            database_url: None,
            database_max_connections: 16,
            log_format: LogFormat::Text,
            limits: LimitsConfig::default(),
            bootstrap: BootstrapConfig::default(),
            vault: VaultSettings::default(),
            audit: AuditSettings::default(),
            scan: ScanSettings::default(),
            review: ReviewSettings::default(),
            identity: IdentitySettings::default(),
            tls: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            max_bundle_bytes: l.max_archive_bytes,
            max_unpacked_bytes: l.max_unpacked_bytes,
            max_bundle_files: l.max_files,
            max_json_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            org: "default".to_owned(),
            admin_email: "admin@gatehouse.local".to_owned(),
            token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl LimitsConfig {
    /// The bundle limits for unpacking.
    pub fn bundle(&self) -> Limits {
        Limits {
            max_archive_bytes: self.max_bundle_bytes,
            max_unpacked_bytes: self.max_unpacked_bytes,
            max_files: self.max_bundle_files,
        }
    }
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The file is not valid.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// An environment variable has an invalid value.
    #[error("invalid value for environment variable `{var}`: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What was expected.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Where environment variables come from; tests pass a map instead of the process environment.
pub trait Env {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// The environment variables read, in the order applied.
pub const ENV_VARS: [&str; 16] = [
    "GATEHOUSE_LISTEN",
    "GATEHOUSE_DATA_DIR",
    "GATEHOUSE_DATABASE_URL",
    "GATEHOUSE_DATABASE_MAX_CONNECTIONS",
    "GATEHOUSE_LOG_FORMAT",
    "GATEHOUSE_MAX_BUNDLE_BYTES",
    "GATEHOUSE_MAX_UNPACKED_BYTES",
    "GATEHOUSE_MAX_BUNDLE_FILES",
    "GATEHOUSE_MAX_JSON_BYTES",
    "GATEHOUSE_BOOTSTRAP_ORG",
    "GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL",
    "GATEHOUSE_VAULT_DEFAULT_KEK",
    "GATEHOUSE_VAULT_KEY_FILE",
    "GATEHOUSE_PKCS11_LIBRARY",
    "GATEHOUSE_PKCS11_TOKEN",
    "GATEHOUSE_PKCS11_PIN_FILE",
];

fn parse_env<T: std::str::FromStr>(env: &dyn Env, var: &'static str, what: &str) -> Result<Option<T>, ConfigError> {
    match env.get(var) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse().map(Some).map_err(|_| ConfigError::Env { var, message: format!("expected {what}") })
        }
    }
}

impl Config {
    /// The local key file's path.
    pub fn key_file(&self) -> PathBuf {
        self.vault.key_file.clone().unwrap_or_else(|| self.data_dir.join("vault-keys.json"))
    }

    /// The access-token signing key file's path.
    pub fn token_key_file(&self) -> PathBuf {
        self.identity.token_key_file.clone().unwrap_or_else(|| self.data_dir.join("token-keys.json"))
    }

    /// Where the audit keys live.
    pub fn audit_key_file(&self) -> PathBuf {
        self.audit.key_file.clone().unwrap_or_else(|| self.data_dir.join("audit-keys.json"))
    }

    /// Reads a configuration file over the defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), message: e.to_string() })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.display().to_string(), message })
    }

    /// Parses configuration text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1);
            match line {
                Some(l) => format!("line {l}: {}", e.message().trim()),
                None => e.message().trim().to_owned(),
            }
        })?;
        if config.version != CONFIG_VERSION {
            return Err(format!("`version` is {}; this build reads version {CONFIG_VERSION}", config.version));
        }
        Ok(config)
    }

    /// Applies `GATEHOUSE_*` variables from `env`.
    pub fn apply_env(&mut self, env: &dyn Env) -> Result<(), ConfigError> {
        if let Some(v) = parse_env(env, "GATEHOUSE_LISTEN", "an address such as 127.0.0.1:8080")? {
            self.listen = v;
        }
        if let Some(v) = env.get("GATEHOUSE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env.get("GATEHOUSE_DATABASE_URL") {
            self.database_url = (!v.trim().is_empty()).then_some(v);
        }
        if let Some(v) = parse_env(env, "GATEHOUSE_DATABASE_MAX_CONNECTIONS", "a number")? {
            self.database_max_connections = v;
        }
        if let Some(v) = env.get("GATEHOUSE_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        var: "GATEHOUSE_LOG_FORMAT",
                        message: "expected `text` or `json`".to_owned(),
                    });
                }
            };
        }
        if let Some(v) = parse_env(env, "GATEHOUSE_MAX_BUNDLE_BYTES", "a number of bytes")? {
            self.limits.max_bundle_bytes = v;
        }
        if let Some(v) = parse_env(env, "GATEHOUSE_MAX_UNPACKED_BYTES", "a number of bytes")? {
            self.limits.max_unpacked_bytes = v;
        }
        if let Some(v) = parse_env(env, "GATEHOUSE_MAX_BUNDLE_FILES", "a number")? {
            self.limits.max_bundle_files = v;
        }
        if let Some(v) = parse_env(env, "GATEHOUSE_MAX_JSON_BYTES", "a number of bytes")? {
            self.limits.max_json_bytes = v;
        }
        if let Some(v) = env.get("GATEHOUSE_BOOTSTRAP_ORG") {
            self.bootstrap.org = v;
        }
        if let Some(v) = env.get("GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL") {
            self.bootstrap.admin_email = v;
        }
        if let Some(v) = env.get("GATEHOUSE_VAULT_DEFAULT_KEK") {
            self.vault.default_kek = v;
        }
        if let Some(v) = env.get("GATEHOUSE_VAULT_KEY_FILE") {
            self.vault.key_file = Some(PathBuf::from(v));
        }
        if let (Some(library), Some(token_label)) =
            (env.get("GATEHOUSE_PKCS11_LIBRARY"), env.get("GATEHOUSE_PKCS11_TOKEN"))
        {
            self.vault.pkcs11 = Some(Pkcs11Settings {
                library: PathBuf::from(library),
                token_label,
                pin_file: env.get("GATEHOUSE_PKCS11_PIN_FILE").map(PathBuf::from),
            });
        }
        Ok(())
    }

    fn validate_sso(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Some(u) = &self.identity.public_url
            && url::Url::parse(u).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
        {
            return invalid(format!("`identity.public_url` `{u}` is not an http(s) URL"));
        }
        let mut orgs = std::collections::HashSet::new();
        for s in &self.identity.sso {
            let at = format!("[[identity.sso]] for org `{}`", s.org);
            if !orgs.insert(s.org.as_str()) {
                return invalid(format!("{at}: the org has more than one provider"));
            }
            if !s.discovery_url.ends_with("/.well-known/openid-configuration")
                || url::Url::parse(&s.discovery_url).is_err()
            {
                return invalid(format!("{at}: `discovery_url` must be `<issuer>/.well-known/openid-configuration`"));
            }
            if s.client_id.trim().is_empty() {
                return invalid(format!("{at}: `client_id` is empty"));
            }
            if s.client_secret_file.is_some() == s.client_secret_env.is_some() {
                return invalid(format!("{at}: set exactly one of `client_secret_file` and `client_secret_env`"));
            }
            if s.redirect_url.is_none() && self.identity.public_url.is_none() {
                return invalid(format!("{at}: set `redirect_url` or `identity.public_url`"));
            }
            for u in [&s.redirect_url, &s.post_logout_redirect_url].into_iter().flatten() {
                if url::Url::parse(u).is_err() {
                    return invalid(format!("{at}: `{u}` is not a URL"));
                }
            }
            if !s.scopes.iter().any(|x| x == "openid") {
                return invalid(format!("{at}: `scopes` must include `openid`"));
            }
            if s.session_idle.is_zero() || s.session_absolute < s.session_idle {
                return invalid(format!("{at}: `session_idle` must be above zero and at most `session_absolute`"));
            }
        }
        Ok(())
    }

    /// Checks values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.review.url.is_some() != self.review.model.is_some() {
            return Err(ConfigError::Invalid(
                "`review.url` and `review.model` are set together or not at all".to_owned(),
            ));
        }
        if self.scan.max_attempts == 0 || self.scan.lease < Duration::from_secs(10) {
            return Err(ConfigError::Invalid(
                "`scan.max_attempts` must be at least 1 and `scan.lease` at least 10s".to_owned(),
            ));
        }
        if self.identity.access_token_ttl.is_zero() || self.identity.access_token_ttl > Duration::from_secs(900) {
            return Err(ConfigError::Invalid("`identity.access_token_ttl` must be from 1s to 15m".to_owned()));
        }
        if self.identity.issuer.trim().is_empty() {
            return Err(ConfigError::Invalid("`identity.issuer` must not be empty".to_owned()));
        }
        self.validate_sso()?;
        if !(1..=64).contains(&self.scan.workers) {
            return Err(ConfigError::Invalid("`scan.workers` must be 1 to 64".to_owned()));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "`database_url` must start with postgres:// (leave it unset for the embedded SQLite)".to_owned(),
            ));
        }
        if self.limits.max_bundle_bytes == 0 || self.limits.max_unpacked_bytes < self.limits.max_bundle_bytes {
            return Err(ConfigError::Invalid(
                "`limits.max_unpacked_bytes` must be at least `limits.max_bundle_bytes`, and both above zero"
                    .to_owned(),
            ));
        }
        let backend = |r: &str| r.split_once(':').map(|(b, _)| b.to_owned()).unwrap_or_default();
        for (what, b) in [
            ("vault.default_kek", backend(&self.vault.default_kek)),
            ("vault.org_key_backend", self.vault.org_key_backend.clone()),
        ] {
            match b.as_str() {
                "local" => {}
                "pkcs11" if self.vault.pkcs11.is_some() => {}
                "pkcs11" => {
                    return Err(ConfigError::Invalid(format!(
                        "`{what}` uses pkcs11 but `[vault.pkcs11]` is not configured"
                    )));
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "`{what}` must name the `local` or `pkcs11` backend (`backend:name` for keys)"
                    )));
                }
            }
        }
        if self.audit.checkpoint_every == 0 || self.audit.checkpoint_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "`audit.checkpoint_every` and `audit.checkpoint_interval` must be above zero".to_owned(),
            ));
        }
        if self.audit.retention_days == 0 {
            return Err(ConfigError::Invalid("`audit.retention_days` must be at least 1".to_owned()));
        }
        let mut names = std::collections::HashSet::new();
        for e in &self.audit.exports {
            if !names.insert(&e.name) || e.name.is_empty() {
                return Err(ConfigError::Invalid(format!("audit export names must be unique and set: `{}`", e.name)));
            }
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid("`database_max_connections` must be at least 1".to_owned()));
        }
        Ok(())
    }

    /// This configuration as TOML with secrets masked, for `gatehouse config show`.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(&self.masked()).unwrap_or_default()
    }

    /// This configuration with secrets masked, for printing in any format.
    pub fn masked(&self) -> Config {
        let mut review = self.review.clone();
        review.url = review.url.as_deref().map(mask_url);
        Config { database_url: self.database_url.as_deref().map(mask_url), review, ..self.clone() }
    }
}

/// Replaces the password (and any query string, which may carry one) of a URL with `****`.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            if u.query().is_some() {
                u.set_query(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "****".to_owned(),
    }
}

/// `Duration` as a humantime string (`24h`) in TOML.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let mut c =
            Config::from_toml("version = 1\nlisten = \"0.0.0.0:9000\"\n[limits]\nmax_bundle_bytes = 10\n").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.max_bundle_bytes, 10);
        assert_eq!(c.data_dir, PathBuf::from("./gatehouse-data"));
        let env: HashMap<String, String> = [
            ("GATEHOUSE_LISTEN".to_owned(), "127.0.0.1:7000".to_owned()),
            ("GATEHOUSE_MAX_BUNDLE_BYTES".to_owned(), "20".to_owned()),
        ]
        .into();
        c.apply_env(&env).unwrap();
        assert_eq!((c.listen.port(), c.limits.max_bundle_bytes), (7000, 20));
    }

    #[test]
    fn unknown_keys_and_wrong_versions_are_named() {
        let e = Config::from_toml("version = 1\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("unknown field `listen_addr`"), "{e}");
        let e = Config::from_toml("version = 2\n").unwrap_err();
        assert!(e.contains("version 1"), "{e}");
    }

    #[test]
    fn bad_env_values_are_named() {
        let env: HashMap<String, String> = [("GATEHOUSE_LISTEN".to_owned(), "nowhere".to_owned())].into();
        let e = Config::default().apply_env(&env).unwrap_err();
        assert!(e.to_string().contains("GATEHOUSE_LISTEN"), "{e}");
    }

    #[test]
    fn masked_output_hides_the_database_password() {
        let c = Config {
            database_url: Some("postgres://gh:canary-s3cret@db.internal:5432/gh?sslpassword=canary-2".to_owned()),
            ..Config::default()
        };
        let shown = c.to_masked_toml();
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("postgres://gh:****@db.internal:5432/gh"), "{shown}");
        assert_eq!(mask_url("not a url with canary"), "****");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_config_text_never_panics(text in "\\PC{0,300}") {
            let _ = Config::from_toml(&text);
        }

        #[test]
        fn masking_never_reveals_a_password(user in "[a-z]{1,8}", pw in "[A-Za-z0-9]{12,20}", host in "[a-z]{1,10}") {
            let shown = mask_url(&format!("postgres://{user}:{pw}@{host}:5432/db"));
            proptest::prop_assert!(!shown.contains(&pw), "{}", shown);
        }
    }

    #[test]
    fn validation_catches_bad_urls() {
        let c = Config { database_url: Some("mysql://x".to_owned()), ..Config::default() };
        assert!(c.validate().is_err());
        Config::default().validate().unwrap();
    }
}
