//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Gatehouse: governance control plane for AI-built business apps.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control-plane server.
    Serve(ServerArgs),
    /// Inspect the server configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Save the server URL and an API token for later commands.
    Login(LoginArgs),
    /// Forget the saved credential.
    Logout,
    /// Show who the saved credential belongs to.
    Whoami,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Folders.
    #[command(subcommand)]
    Folder(FolderCommand),
    /// Apps, their history and diffs.
    #[command(subcommand)]
    App(AppCommand),
    /// Pack an app folder and push it as a new revision.
    Push(PushArgs),
    /// Users and service identities.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Secrets: write-only values that apps reach through Gatehouse.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// The organization's vault key.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// The audit log: search, verify, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The offline vulnerability database (OSV advisories) that dependency checks use.
    #[command(subcommand)]
    Advisories(AdvisoriesCommand),
    /// Which scan findings block a release: org-wide and per folder.
    #[command(subcommand)]
    ScanPolicy(ScanPolicyCommand),
    /// What the independent reviewer is told, and whether a model may review its own work.
    #[command(subcommand)]
    ReviewPolicy(ReviewPolicyCommand),
    /// Who may do what where: roles on folders, groups, guardrails, and explanations.
    #[command(subcommand)]
    Authz(AuthzCommand),
    /// SCIM provisioning: the bearer tokens the identity provider uses at /scim/v2.
    #[command(subcommand)]
    Scim(ScimCommand),
    /// Client certificates for service identities (mTLS): the org's client CA.
    #[command(subcommand)]
    Mtls(MtlsCommand),
    /// Sign-in sessions: list and revoke.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Scan a directory, a file or staged git changes for secrets, offline (no server needed).
    /// Exits 1 when a finding blocks under the policy, 2 when the scan itself fails.
    Scan(ScanArgs),
    /// Break-glass operations run on the server host, directly against the database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdvisoriesCommand {
    /// Add OSV advisories (JSON or YAML files, directories of them, or OSV `all.zip` dumps) to the
    /// index; advisories with an id already there replace it.
    Import {
        /// Files, directories or .zip dumps.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The index file (default: gatehouse/advisories.jsonl.gz in the user's data directory).
        #[arg(long)]
        index: Option<PathBuf>,
    },
    /// Show what the index holds.
    Status {
        /// The index file.
        #[arg(long)]
        index: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthzCommand {
    /// Answer allow or deny for a principal, an action and a resource, naming the deciding
    /// policies and the role bindings that apply.
    Explain {
        /// Principal id or name (email or service slug); yourself when absent.
        #[arg(long)]
        principal: Option<String>,
        /// Action, such as app.push (see `gatehouse authz roles`).
        #[arg(long)]
        action: String,
        /// Resource: app:NAME, folder:/PATH, principal:ID or org.
        #[arg(long)]
        resource: String,
    },
    /// Grant a role on a folder (and everything below it) to a principal or a group.
    Grant {
        /// Role name.
        role: String,
        /// Folder path or id (`/` for the whole org).
        #[arg(long)]
        folder: String,
        /// Principal id.
        #[arg(long, conflicts_with = "group")]
        principal: Option<String>,
        /// Group id.
        #[arg(long)]
        group: Option<String>,
    },
    /// Revoke a role binding.
    Revoke {
        /// Binding id (`rb_…`).
        id: String,
    },
    /// List role bindings.
    Bindings {
        /// Only this principal's or group's (id).
        #[arg(long)]
        subject: Option<String>,
    },
    /// List built-in and custom roles with their actions.
    Roles,
    /// Define or redefine a custom role.
    DefineRole {
        /// Role name.
        name: String,
        /// Actions, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Add or replace a guardrail from a Cedar file holding one `forbid` policy.
    Guardrail {
        /// Guardrail name.
        name: String,
        /// The policy file.
        #[arg(long)]
        file: PathBuf,
        /// Why it exists.
        #[arg(long)]
        description: Option<String>,
    },
    /// List guardrails.
    Guardrails,
    /// Remove a guardrail.
    RemoveGuardrail {
        /// Guardrail name.
        name: String,
    },
    /// Print the Cedar schema guardrails are written against.
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum ReviewPolicyCommand {
    /// Show the policy in force (the org's, or the server's default).
    Show,
    /// Set the org's policy from a text file (admin).
    Set {
        /// A file holding the policy in words.
        #[arg(long)]
        file: PathBuf,
        /// Let the model that wrote a revision review it too.
        #[arg(long)]
        allow_self_review: bool,
    },
    /// Return to the server's default policy (admin).
    Clear,
}

#[derive(Debug, Subcommand)]
pub enum ScanPolicyCommand {
    /// Show the policy.
    Show,
    /// Set the level at or above which findings block (org-wide, or for --folder and below).
    Set {
        /// low, medium, high or critical.
        #[arg(value_enum)]
        block_at: SeverityArg,
        /// Folder path or id.
        #[arg(long)]
        folder: Option<String>,
    },
    /// Remove the org's level (back to the default) or a folder's override.
    Clear {
        /// Folder path or id.
        #[arg(long)]
        folder: Option<String>,
    },
}

/// Output formats of `gatehouse scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Text,
    Json,
    Sarif,
}

/// The checks `gatehouse scan` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckArg {
    Secrets,
    Dependencies,
    Code,
}

/// Severities on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan: a directory (recursively) or a file; with --staged, the repository.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Scan only the changes staged for the next commit (lines they add), as a pre-commit hook.
    #[arg(long)]
    pub staged: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScanFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Findings at or above this severity block (exit 1).
    #[arg(long, value_enum, default_value = "high")]
    pub block_on: SeverityArg,
    /// A rule file in gitleaks format (use `[extend] useDefault = true` to add to the built-in rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Also scan files that .gitignore and .ignore exclude.
    #[arg(long)]
    pub no_ignore: bool,
    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// Key for secret fingerprints (32 bytes, hex); default: a key kept in the user's config directory.
    #[arg(long)]
    pub fingerprint_key_file: Option<PathBuf>,
    /// Which checks run: any of secrets, dependencies, code (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "secrets,dependencies,code")]
    pub checks: Vec<CheckArg>,
    /// Further code-pattern rules (ast-grep YAML), added to the built-in ones.
    #[arg(long)]
    pub pattern_rules: Option<PathBuf>,
    /// The advisory index for dependency checks (default: the one `gatehouse advisories import`
    /// writes, when it exists; without one, dependencies are checked for everything but known
    /// vulnerabilities, and a note says so).
    #[arg(long)]
    pub advisories: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Issue a short-lived token for an existing, active principal without going through the API
    /// (for example when the bootstrap token expired unused). Needs the server's configuration
    /// and database access, so only the server's operators can run it.
    Token {
        /// The principal's name (email for users).
        principal: String,
        /// The organization's name (default: the operator organization).
        #[arg(long)]
        org: Option<String>,
        /// Lifetime, such as 1h or 24h.
        #[arg(long, default_value = "24h")]
        ttl: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Rotate the key that signs service identities' access tokens. Running servers that share
    /// the key file sign with the new key within a second; the old one keeps verifying (and stays
    /// in the JWKS) until the tokens it signed have expired.
    RotateTokenKey {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// List secrets (metadata only; values are never shown).
    List,
    /// Set a secret, or write a new version of it. The value is read from a file or from
    /// standard input, never from the command line.
    Set {
        /// The secret's name, such as STRIPE_KEY.
        name: String,
        /// Read the value from this file (default: standard input).
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Scope to this folder (path or id) and everything below it.
        #[arg(long, conflicts_with = "app")]
        folder: Option<String>,
        /// Scope to this app (name or id).
        #[arg(long)]
        app: Option<String>,
        /// Remind to rotate this many days after each write.
        #[arg(long)]
        rotate_every_days: Option<i64>,
    },
    /// Show a secret's metadata.
    Show {
        /// Secret id.
        id: String,
    },
    /// Delete a secret and all its versions.
    Delete {
        /// Secret id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Show which key wraps the organization's secrets.
    Key,
    /// Move the organization to a new key (its own, or an existing `backend:name`).
    Rotate {
        /// An existing key to adopt, such as pkcs11:acme-kek.
        #[arg(long)]
        kek: Option<String>,
    },
    /// Destroy the organization's key: all its secrets become unreadable for good.
    Destroy {
        /// The organization's name, typed out.
        #[arg(long)]
        confirm: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Search the organization's audit log (needs an `admin` or `audit` token).
    Search {
        /// Recorded at or after (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Recorded before (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Actor id or name.
        #[arg(long)]
        actor: Option<String>,
        /// Action, or a prefix ending in `.` such as `app.`.
        #[arg(long)]
        action: Option<String>,
        /// Resource id.
        #[arg(long)]
        resource: Option<String>,
        /// success, denied or failed.
        #[arg(long)]
        outcome: Option<String>,
        /// Most records to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Verify the hash chain and signed checkpoints, on the server or in an exported file.
    /// Exits 1 and names the first bad sequence number when the log was tampered with.
    Verify {
        /// First sequence number.
        #[arg(long)]
        from: Option<u64>,
        /// Last sequence number.
        #[arg(long)]
        to: Option<u64>,
        /// Verify this exported file offline instead (needs --public-key, no server).
        #[arg(long, requires = "public_key")]
        file: Option<std::path::PathBuf>,
        /// The checkpoint public key (hex), as `gatehouse audit public-key` printed it.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Export a range of the log as NDJSON with its checkpoints, for offline verification.
    Export {
        /// First sequence number.
        #[arg(long)]
        from: Option<u64>,
        /// Last sequence number.
        #[arg(long)]
        to: Option<u64>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Where the chain stands.
    Head,
    /// The public key that verifies checkpoints.
    PublicKey,
    /// Health of the SIEM exports.
    Exports,
}

/// Where the server's configuration comes from; flags override `GATEHOUSE_*` variables, which
/// override the file, which overrides the defaults.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// Configuration file (TOML). Also `GATEHOUSE_CONFIG`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, such as 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory of the embedded SQLite database.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); replaces the embedded SQLite.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log line format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets masked.
    Show(ServerArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, such as http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// The API token; `-` reads it from standard input (keeps it out of shell history).
    #[arg(long, required_unless_present = "sso", conflicts_with = "sso")]
    pub token: Option<String>,
    /// Sign in through the organization's identity provider in a browser (single sign-on); the
    /// CLI then holds a session that ends like a browser session does.
    #[arg(long, requires = "org")]
    pub sso: bool,
    /// The organization to sign in to (with --sso).
    #[arg(long)]
    pub org: Option<String>,
    /// Print the sign-in URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Sign in with the provider's device flow: enter a code on any device with a browser
    /// (for machines that cannot open one, such as a server over SSH).
    #[arg(long, requires = "sso")]
    pub device: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Show the current organization.
    Show,
    /// List organizations (all of them for operator admins).
    List,
    /// Create an organization with its first admin (operator admins).
    Create {
        /// Slug, unique across the deployment.
        name: String,
        /// Email of the first admin.
        #[arg(long)]
        admin_email: String,
        /// Name for people.
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// List folders.
    List,
    /// Create a folder; PATH such as /finance/refunds (the parent must exist).
    Create {
        /// Full path of the new folder.
        path: String,
    },
    /// Rename a folder.
    Rename {
        /// Folder path or id.
        folder: String,
        /// New name.
        name: String,
    },
    /// Move a folder under another.
    Move {
        /// Folder path or id.
        folder: String,
        /// New parent path or id.
        parent: String,
    },
    /// Delete an empty folder.
    Delete {
        /// Folder path or id.
        folder: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List apps.
    List {
        /// Only apps directly in this folder.
        #[arg(long)]
        folder: Option<String>,
    },
    /// Create an app.
    Create {
        /// Name (slug); the manifest's [app].name must match it.
        name: String,
        /// Folder path or id (default: /).
        #[arg(long)]
        folder: Option<String>,
        /// low, normal or high.
        #[arg(long)]
        sensitivity: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show an app.
    Show {
        /// App name or id.
        app: String,
    },
    /// Change an app.
    Update {
        /// App name or id.
        app: String,
        /// Move to this folder.
        #[arg(long)]
        folder: Option<String>,
        /// low, normal or high (lowering needs admin).
        #[arg(long)]
        sensitivity: Option<String>,
        /// active or archived.
        #[arg(long)]
        status: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List an app's revisions, newest first.
    History {
        /// App name or id.
        app: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Download a revision's canonical archive (tar.gz).
    Download {
        /// App name or id.
        app: String,
        /// Revision (digest, prefix, number or head).
        #[arg(default_value = "head")]
        rev: String,
        /// Where to write it (default: APP-DIGEST.tar.gz in the current folder).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Compare two revisions: files, then manifest capabilities.
    Diff {
        /// App name or id.
        app: String,
        /// Older revision (digest, prefix, number or head).
        from: String,
        /// Newer revision.
        to: String,
    },
    /// Show a revision's scan: findings (masked) and the release verdict. Exits 1 when the
    /// verdict is not `pass` (blocked, failed, or still pending without --wait).
    Scan {
        /// App name or id.
        app: String,
        /// Revision (digest, prefix, number or head).
        #[arg(default_value = "head")]
        rev: String,
        /// Wait for a pending scan to finish (up to this long, such as 60s).
        #[arg(long, num_args = 0..=1, default_missing_value = "60s")]
        wait: Option<String>,
        /// Queue the scan again first (after a failure, or to apply changed rules).
        #[arg(long)]
        rescan: bool,
    },
    /// Accept a finding for a while (admin): by --fingerprint, or by --rule with --path.
    Suppress {
        /// App name or id.
        app: String,
        /// The finding's fingerprint (from `gatehouse app scan`).
        #[arg(long)]
        fingerprint: Option<String>,
        /// The rule id (with --path).
        #[arg(long)]
        rule: Option<String>,
        /// The file (with --rule).
        #[arg(long)]
        path: Option<String>,
        /// Why it is acceptable (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Days until it expires (1-90).
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// List an app's suppressions, including expired and revoked ones.
    Suppressions {
        /// App name or id.
        app: String,
    },
    /// Revoke a suppression before it expires (admin).
    Unsuppress {
        /// App name or id.
        app: String,
        /// Suppression id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The app folder, with gatehouse.toml at its root.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// What changed.
    #[arg(long, short)]
    pub message: Option<String>,
    /// Parent revision (default: the app's latest).
    #[arg(long)]
    pub parent: Option<String>,
    /// The AI coding agent that produced the change. Also `GATEHOUSE_AI_AGENT`.
    #[arg(long, env = "GATEHOUSE_AI_AGENT")]
    pub ai_agent: Option<String>,
    /// The model behind it. Also `GATEHOUSE_AI_MODEL`.
    #[arg(long, env = "GATEHOUSE_AI_MODEL")]
    pub ai_model: Option<String>,
    /// A prompt id (repeatable).
    #[arg(long = "prompt-id")]
    pub prompt_ids: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum MtlsCommand {
    /// Trust a CA (PEM file) to issue the org's service identities' client certificates; their
    /// URI SAN is spiffe://gatehouse/org/<org>/service/<name>.
    SetCa {
        /// The CA certificate(s), PEM.
        file: PathBuf,
    },
    /// Show the org's client CA.
    Ca,
    /// Stop accepting client certificates.
    RemoveCa,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List your sign-in sessions, or a principal's.
    List {
        /// A principal id (needs principal.manage on it).
        #[arg(long)]
        principal: Option<String>,
    },
    /// Revoke a session.
    Revoke {
        /// Session id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScimCommand {
    /// Create a SCIM bearer token for the org's identity provider (shown once).
    CreateToken,
    /// List the org's SCIM tokens.
    Tokens,
    /// Revoke a SCIM token.
    RevokeToken {
        /// Token id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// List users and service identities.
    List,
    /// Create a user (by email) or a service identity (by slug).
    Create {
        /// Email for users, slug for services.
        name: String,
        /// user or service.
        #[arg(long, default_value = "user")]
        kind: String,
        /// The most its tokens may carry: read, push, write or admin.
        #[arg(long, default_value = "read")]
        max_scope: String,
        /// Name for people.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Issue an OAuth client secret for a service identity (shown once); exchange it at
    /// /oauth/token for 15-minute access tokens.
    ClientSecret {
        /// Service identity id.
        id: String,
    },
    /// Deactivate a principal; its tokens are revoked at once.
    Deactivate {
        /// Principal id.
        id: String,
    },
    /// Reactivate a principal (its old tokens stay revoked).
    Activate {
        /// Principal id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List tokens (yours, or all for admins).
    List,
    /// Create a token; its secret is printed once.
    Create {
        /// A label, such as laptop or github-actions.
        name: String,
        /// read, push, write or admin.
        #[arg(long, default_value = "read")]
        scope: String,
        /// Lifetime, such as 30d or 12h (default 90d).
        #[arg(long)]
        expires_in: Option<String>,
        /// Issue for this principal id (admins).
        #[arg(long)]
        principal: Option<String>,
    },
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}
