//! The saved credential: server URL and API token in the user's config directory, readable by
//! the user alone.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// A server and a token for it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credential {
    /// Base URL of the server.
    pub url: String,
    /// The bearer token. Never printed.
    pub token: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("url", &self.url).field("token", &"****").finish()
    }
}

/// The directory holding the credential: `GATEHOUSE_CONFIG_DIR`, else `<config dir>/gatehouse`.
pub fn dir() -> Result<PathBuf> {
    if let Ok(d) = std::env::var("GATEHOUSE_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    Ok(dirs::config_dir().context("cannot find a configuration directory; set GATEHOUSE_CONFIG_DIR")?.join("gatehouse"))
}

fn file() -> Result<PathBuf> {
    Ok(dir()?.join("credentials.toml"))
}

/// The credential to use: `GATEHOUSE_URL` and `GATEHOUSE_TOKEN` when both are set (for CI),
/// otherwise the saved one.
pub fn load() -> Result<Credential> {
    if let (Ok(url), Ok(token)) = (std::env::var("GATEHOUSE_URL"), std::env::var("GATEHOUSE_TOKEN")) {
        return Ok(Credential { url, token });
    }
    let path = file()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("not logged in; run `gatehouse login --url URL --token TOKEN` first")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text).with_context(|| format!("{} is not a valid credential file; log in again", path.display()))
}

/// Saves `cred` with 0600 permissions (directory 0700).
pub fn save(cred: &Credential) -> Result<PathBuf> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    let path = dir.join("credentials.toml");
    let tmp = dir.join(".credentials.toml.tmp");
    let text = toml::to_string(cred).context("cannot encode the credential")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Removes the saved credential; true if there was one.
pub fn remove() -> Result<bool> {
    let path = file()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}
