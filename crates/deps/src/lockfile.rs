//! Lockfile parsers: what exactly gets installed, by ecosystem, name and version, with the line
//! each package is declared on and what else a reviewer should know (install scripts).
//!
//! Each parser reads one file's text. Malformed input is an error naming the file and the
//! problem, never a panic and never a silent empty list.

use serde::Deserialize;

use crate::osv::Ecosystem;

/// One installed package as the lockfile pins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// The exact version; `None` when the file does not pin one (an unpinned requirement).
    pub version: Option<String>,
    /// 1-based line where the package appears (best effort: the first mention).
    pub line: usize,
    /// The package runs code at install time (npm `hasInstallScript`, pnpm `requiresBuild`).
    pub install_script: bool,
    /// The requirement as written, for unpinned entries (`requests>=2`).
    pub spec: Option<String>,
}

/// Why a lockfile could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct LockfileError {
    pub file: String,
    pub reason: String,
}

/// The lockfile formats we read, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    PackageLock,
    YarnLock,
    PnpmLock,
    Requirements,
    PoetryLock,
    PipfileLock,
    CargoLock,
}

impl Format {
    /// The format of a file by its name (`requirements*.txt` included), if it is a lockfile.
    pub fn detect(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path);
        Some(match name {
            "package-lock.json" | "npm-shrinkwrap.json" => Format::PackageLock,
            "yarn.lock" => Format::YarnLock,
            "pnpm-lock.yaml" => Format::PnpmLock,
            "poetry.lock" => Format::PoetryLock,
            "Pipfile.lock" => Format::PipfileLock,
            "Cargo.lock" => Format::CargoLock,
            n if n.starts_with("requirements") && n.ends_with(".txt") => Format::Requirements,
            _ => return None,
        })
    }
}

/// Parses a lockfile's text.
pub fn parse(format: Format, path: &str, text: &str) -> Result<Vec<Locked>, LockfileError> {
    let err = |reason: String| LockfileError { file: path.to_owned(), reason };
    let mut out = match format {
        Format::PackageLock => package_lock(text).map_err(err)?,
        Format::YarnLock => yarn_lock(text),
        Format::PnpmLock => pnpm_lock(text),
        Format::Requirements => requirements(text),
        Format::PoetryLock => toml_packages(text, Ecosystem::PyPI).map_err(err)?,
        Format::CargoLock => toml_packages(text, Ecosystem::CratesIo).map_err(err)?,
        Format::PipfileLock => pipfile_lock(text).map_err(err)?,
    };
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    Ok(out)
}

/// The 1-based line of the first occurrence of `needle` (1 when absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |at| text[..at].matches('\n').count() + 1)
}

#[derive(Deserialize)]
struct NpmLock {
    #[serde(rename = "lockfileVersion")]
    lockfile_version: Option<u32>,
    #[serde(default)]
    packages: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    dependencies: Option<serde_json::Map<String, serde_json::Value>>,
}

/// npm's `package-lock.json`: v2/v3 list every installed path under `packages`; v1 nests
/// `dependencies`.
fn package_lock(text: &str) -> Result<Vec<Locked>, String> {
    let lock: NpmLock = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut out = Vec::new();
    match (lock.packages, lock.dependencies) {
        (Some(packages), _) if lock.lockfile_version.unwrap_or(2) >= 2 => {
            for (path, entry) in packages {
                let Some(at) = path.rfind("node_modules/") else { continue };
                if entry.get("link").and_then(serde_json::Value::as_bool) == Some(true) {
                    continue;
                }
                let name = entry.get("name").and_then(serde_json::Value::as_str).unwrap_or(&path[at + 13..]);
                out.push(Locked {
                    ecosystem: Ecosystem::Npm,
                    name: name.to_owned(),
                    version: entry.get("version").and_then(serde_json::Value::as_str).map(str::to_owned),
                    line: line_of(text, &format!("\"{path}\"")),
                    install_script: entry.get("hasInstallScript").and_then(serde_json::Value::as_bool) == Some(true),
                    spec: None,
                });
            }
        }
        (_, Some(deps)) => v1_dependencies(&deps, text, &mut out, 0)?,
        _ => return Err("neither `packages` nor `dependencies`".into()),
    }
    Ok(out)
}

fn v1_dependencies(
    deps: &serde_json::Map<String, serde_json::Value>,
    text: &str,
    out: &mut Vec<Locked>,
    depth: usize,
) -> Result<(), String> {
    if depth > 64 {
        return Err("dependencies nest deeper than 64 levels".into());
    }
    for (name, entry) in deps {
        out.push(Locked {
            ecosystem: Ecosystem::Npm,
            name: name.clone(),
            version: entry.get("version").and_then(serde_json::Value::as_str).map(str::to_owned),
            line: line_of(text, &format!("\"{name}\": {{")),
            install_script: false,
            spec: None,
        });
        if let Some(nested) = entry.get("dependencies").and_then(serde_json::Value::as_object) {
            v1_dependencies(nested, text, out, depth + 1)?;
        }
    }
    Ok(())
}

/// The package name in a yarn/pnpm specifier such as `"@babel/core@^7.0.0"` or `lodash@npm:4.17.21`.
fn spec_name(spec: &str) -> &str {
    let spec = spec.trim().trim_matches('"');
    let search_from = usize::from(spec.starts_with('@'));
    match spec[search_from..].find('@') {
        Some(at) => &spec[..at + search_from],
        None => spec,
    }
}

/// `yarn.lock`, classic (v1: `version "1.2.3"`) and Berry (v2+: `version: 1.2.3`).
fn yarn_lock(text: &str) -> Vec<Locked> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize, bool)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            let header = line.trim_end_matches(':');
            let first = header.split(", ").next().unwrap_or(header);
            let skip = first.contains("@workspace:") || first.contains("@patch:") || first.starts_with("__metadata");
            current = Some((spec_name(first).to_owned(), i + 1, skip));
            continue;
        }
        let trimmed = line.trim();
        if let (Some((name, at, skip)), Some(v)) =
            (&current, trimmed.strip_prefix("version ").or_else(|| trimmed.strip_prefix("version: ")))
        {
            if !skip && !name.is_empty() {
                out.push(Locked {
                    ecosystem: Ecosystem::Npm,
                    name: name.clone(),
                    version: Some(v.trim().trim_matches('"').to_owned()),
                    line: *at,
                    install_script: false,
                    spec: None,
                });
            }
            current = None;
        }
    }
    out
}

/// `pnpm-lock.yaml`: keys of the top-level `packages:` map, in the v5 (`/name/1.2.3`), v6
/// (`/name@1.2.3`) and v9 (`name@1.2.3`) spellings, peer suffixes removed.
fn pnpm_lock(text: &str) -> Vec<Locked> {
    let mut out: Vec<Locked> = Vec::new();
    let mut in_packages = false;
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_packages = line.trim_end() == "packages:";
            continue;
        }
        if !in_packages {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && line.trim_end().ends_with(':') {
            let key = line.trim().trim_end_matches(':').trim_matches(|c| c == '\'' || c == '"');
            let key = key.split('(').next().unwrap_or(key);
            let key = key.trim_start_matches('/');
            // The name ends at the first `/` (v5: `name/1.2.3_peer@x`) or `@` (v6, v9) after
            // a scope's own `/`.
            let from = if key.starts_with('@') { key.find('/').map_or(key.len(), |i| i + 1) } else { 0 };
            let Some(end) = key[from..].find(['/', '@']).map(|i| i + from) else { continue };
            let (name, version) = (&key[..end], &key[end + 1..]);
            let version = version.split('_').next().unwrap_or(version);
            out.push(Locked {
                ecosystem: Ecosystem::Npm,
                name: name.to_owned(),
                version: Some(version.to_owned()),
                line: i + 1,
                install_script: false,
                spec: None,
            });
        } else if indent == 4
            && line.trim() == "requiresBuild: true"
            && let Some(last) = out.last_mut()
        {
            last.install_script = true;
        }
    }
    out
}

/// `requirements*.txt`: `name==version` is pinned; anything else names a package without
/// fixing what gets installed.
fn requirements(text: &str) -> Vec<Locked> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if logical.is_empty() {
            start = i + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.split(" #").next().unwrap_or(&line);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') || line.contains("://") {
            continue;
        }
        // Drop environment markers and per-line options such as --hash.
        let req = line.split(';').next().unwrap_or(line);
        let req = req.split(" --").next().unwrap_or(req).trim();
        let name_end =
            req.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(req.len());
        let name = &req[..name_end];
        if name.is_empty() {
            continue;
        }
        let rest = req[name_end..].trim_start();
        // Extras: name[extra]==1.0
        let rest = if rest.starts_with('[') { rest.split_once(']').map_or("", |(_, r)| r.trim_start()) } else { rest };
        let pinned = rest
            .strip_prefix("===")
            .or_else(|| rest.strip_prefix("=="))
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.contains(['*', ',', '<', '>', '!', '~']));
        out.push(Locked {
            ecosystem: Ecosystem::PyPI,
            name: name.to_owned(),
            version: pinned.map(str::to_owned),
            line: start,
            install_script: false,
            spec: if pinned.is_some() { None } else { Some(req.to_owned()) },
        });
    }
    out
}

#[derive(Deserialize)]
struct TomlLock {
    #[serde(default)]
    package: Vec<TomlPackage>,
}

#[derive(Deserialize)]
struct TomlPackage {
    name: String,
    version: String,
    source: Option<String>,
}

/// `poetry.lock` and `Cargo.lock`: `[[package]]` tables with `name` and `version`. Crates
/// without a `source` are the workspace's own and are skipped.
fn toml_packages(text: &str, eco: Ecosystem) -> Result<Vec<Locked>, String> {
    let lock: TomlLock = toml::from_str(text).map_err(|e| format!("invalid TOML: {}", e.message()))?;
    Ok(lock
        .package
        .into_iter()
        .filter(|p| eco != Ecosystem::CratesIo || p.source.is_some())
        .map(|p| Locked {
            line: line_of(text, &format!("name = \"{}\"", p.name)),
            ecosystem: eco,
            name: p.name,
            version: Some(p.version),
            install_script: false,
            spec: None,
        })
        .collect())
}

/// `Pipfile.lock`: JSON with `default` and `develop` maps of `{"version": "==1.2.3"}`.
fn pipfile_lock(text: &str) -> Result<Vec<Locked>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut out = Vec::new();
    for section in ["default", "develop"] {
        let Some(map) = v.get(section).and_then(serde_json::Value::as_object) else { continue };
        for (name, entry) in map {
            let spec = entry.get("version").and_then(serde_json::Value::as_str);
            let version = spec.and_then(|s| s.strip_prefix("==")).map(str::to_owned);
            out.push(Locked {
                ecosystem: Ecosystem::PyPI,
                name: name.clone(),
                spec: if version.is_some() { None } else { Some(spec.unwrap_or("(no version)").to_owned()) },
                version,
                line: line_of(text, &format!("\"{name}\": {{")),
                install_script: false,
            });
        }
    }
    Ok(out)
}

/// The direct dependencies `package.json` declares (to find ones missing from the lockfile).
pub fn package_json_dependencies(text: &str) -> Result<Vec<(String, usize)>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("package.json: invalid JSON: {e}"))?;
    let mut out = Vec::new();
    for section in ["dependencies", "devDependencies", "optionalDependencies"] {
        if let Some(map) = v.get(section).and_then(serde_json::Value::as_object) {
            for name in map.keys() {
                out.push((name.clone(), line_of(text, &format!("\"{name}\""))));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Locked]) -> Vec<(String, Option<String>)> {
        v.iter().map(|l| (l.name.clone(), l.version.clone())).collect()
    }

    fn nv(n: &str, v: &str) -> (String, Option<String>) {
        (n.to_owned(), Some(v.to_owned()))
    }

    #[test]
    fn package_lock_v1_v2_v3() {
        let v3 = r#"{"name":"app","lockfileVersion":3,"packages":{
            "":{"name":"app","dependencies":{"lodash":"^4"}},
            "node_modules/lodash":{"version":"4.17.15"},
            "node_modules/@babel/core":{"version":"7.26.0"},
            "node_modules/a/node_modules/lodash":{"version":"4.17.21"},
            "node_modules/esbuild":{"version":"0.24.0","hasInstallScript":true},
            "node_modules/local":{"resolved":"../local","link":true}}}"#;
        let got = parse(Format::PackageLock, "package-lock.json", v3).unwrap();
        assert_eq!(
            names(&got),
            vec![
                nv("@babel/core", "7.26.0"),
                nv("esbuild", "0.24.0"),
                nv("lodash", "4.17.15"),
                nv("lodash", "4.17.21")
            ]
        );
        assert!(got.iter().find(|l| l.name == "esbuild").unwrap().install_script);
        assert_eq!(got.iter().find(|l| l.name == "lodash").unwrap().line, 3);
        let v1 = r#"{"lockfileVersion":1,"dependencies":{"express":{"version":"4.19.2","dependencies":{"qs":{"version":"6.10.1"}}}}}"#;
        assert_eq!(
            names(&parse(Format::PackageLock, "p", v1).unwrap()),
            vec![nv("express", "4.19.2"), nv("qs", "6.10.1")]
        );
        let err = parse(Format::PackageLock, "package-lock.json", "{nope").unwrap_err();
        assert!(err.to_string().starts_with("package-lock.json: invalid JSON"), "{err}");
    }

    #[test]
    fn yarn_classic_and_berry() {
        let classic = "# yarn lockfile v1\n\n\"@babel/core@^7.0.0\", \"@babel/core@^7.1.0\":\n  version \"7.26.0\"\n  resolved \"x\"\n\nlodash@^4.17.0:\n  version \"4.17.15\"\n";
        assert_eq!(names(&yarn_lock(classic)), vec![nv("@babel/core", "7.26.0"), nv("lodash", "4.17.15")]);
        let berry = "__metadata:\n  version: 6\n\n\"minimist@npm:^1.2.0\":\n  version: 1.2.5\n  resolution: \"minimist@npm:1.2.5\"\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n";
        assert_eq!(names(&yarn_lock(berry)), vec![nv("minimist", "1.2.5")]);
    }

    #[test]
    fn pnpm_v5_v6_v9() {
        let v6 = "lockfileVersion: '6.0'\n\npackages:\n\n  /ws@8.17.0:\n    resolution: {integrity: x}\n    dev: false\n\n  /@types/node@20.1.0(typescript@5.0.0):\n    requiresBuild: true\n";
        let got = pnpm_lock(v6);
        assert_eq!(names(&got), vec![nv("ws", "8.17.0"), nv("@types/node", "20.1.0")]);
        assert!(got[1].install_script);
        let v5 = "lockfileVersion: 5.4\npackages:\n  /lodash/4.17.15:\n    dev: false\n  /react-dom/18.2.0_react@18.2.0:\n    dev: false\n";
        assert_eq!(names(&pnpm_lock(v5)), vec![nv("lodash", "4.17.15"), nv("react-dom", "18.2.0")]);
        let v9 = "lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies: {}\npackages:\n  'semver@7.5.1':\n    resolution: {integrity: x}\nsnapshots:\n  semver@7.5.1: {}\n";
        assert_eq!(names(&pnpm_lock(v9)), vec![nv("semver", "7.5.1")]);
    }

    #[test]
    fn requirements_pinned_and_not() {
        let text = "# deps\nrequests==2.30.0 --hash=sha256:abc\nDjango[argon2]==4.2.1 ; python_version >= '3.8'\nflask>=2\nnumpy\n-r other.txt\n\
                    git+https://github.com/x/y.git\nurllib3 == 1.26.5\nfoo==1.*\nbar==1.0 \\\n  --hash=sha256:def\n";
        let got = requirements(text);
        let pinned: Vec<_> =
            got.iter().filter(|l| l.version.is_some()).map(|l| (l.name.as_str(), l.version.as_deref())).collect();
        assert_eq!(
            pinned,
            vec![
                ("requests", Some("2.30.0")),
                ("Django", Some("4.2.1")),
                ("urllib3", Some("1.26.5")),
                ("bar", Some("1.0"))
            ]
        );
        let loose: Vec<_> = got.iter().filter(|l| l.version.is_none()).map(|l| l.name.as_str()).collect();
        assert_eq!(loose, vec!["flask", "numpy", "foo"]);
        assert_eq!(got.iter().find(|l| l.name == "flask").unwrap().line, 4);
        assert_eq!(got.iter().find(|l| l.name == "bar").unwrap().line, 10);
    }

    #[test]
    fn toml_and_pipfile_locks() {
        let cargo = "version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"time\"\nversion = \"0.1.45\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        let got = parse(Format::CargoLock, "Cargo.lock", cargo).unwrap();
        assert_eq!(names(&got), vec![nv("time", "0.1.45")]);
        assert_eq!(got[0].line, 8);
        let poetry = "[[package]]\nname = \"requests\"\nversion = \"2.30.0\"\ndescription = \"x\"\n";
        assert_eq!(names(&parse(Format::PoetryLock, "poetry.lock", poetry).unwrap()), vec![nv("requests", "2.30.0")]);
        let pipfile =
            r#"{"_meta":{},"default":{"requests":{"version":"==2.30.0"}},"develop":{"pytest":{"version":"*"}}}"#;
        let got = parse(Format::PipfileLock, "Pipfile.lock", pipfile).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got.iter().find(|l| l.name == "pytest").unwrap().version, None);
        assert!(
            parse(Format::CargoLock, "Cargo.lock", "[[package]]\nname = 3")
                .unwrap_err()
                .to_string()
                .contains("invalid TOML")
        );
    }

    #[test]
    fn detects_formats_by_name() {
        assert_eq!(Format::detect("web/package-lock.json"), Some(Format::PackageLock));
        assert_eq!(Format::detect("requirements-dev.txt"), Some(Format::Requirements));
        assert_eq!(Format::detect("src/lock.json"), None);
    }
}
