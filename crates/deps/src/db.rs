//! The offline advisory index: imported from OSV JSON/YAML files, directories of them, or OSV's
//! `all.zip` dumps; kept as one gzip'd JSON-lines file; looked up by ecosystem and package.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::osv::{Advisory, Ecosystem};

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: not an advisory index ({reason})")]
    Format { path: String, reason: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> DbError {
    DbError::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// The first line of an index file.
const FORMAT: &str = "gatehouse-osv-index/1";

/// Advisories for our ecosystems, indexed by package.
#[derive(Debug, Default, Clone)]
pub struct AdvisoryDb {
    advisories: Vec<Advisory>,
    by_package: HashMap<(Ecosystem, String), Vec<usize>>,
}

/// What an import read.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Advisory documents read.
    pub read: usize,
    /// Kept: they name an npm, PyPI or crates.io package.
    pub kept: usize,
    /// Of those, withdrawn (kept so a withdrawal replaces an earlier copy; they never match).
    pub withdrawn: usize,
    /// For other ecosystems.
    pub other_ecosystems: usize,
    /// Files that are not valid advisories: (file, reason). The rest of the import goes on.
    pub errors: Vec<(String, String)>,
    /// Advisories in the index after the import.
    pub total: usize,
}

impl AdvisoryDb {
    /// Builds an index from advisories (later ones with the same id replace earlier ones).
    pub fn from_advisories(list: impl IntoIterator<Item = Advisory>) -> AdvisoryDb {
        let mut by_id: HashMap<String, Advisory> = HashMap::new();
        for a in list {
            by_id.insert(a.id.clone(), a);
        }
        let mut advisories: Vec<Advisory> = by_id.into_values().collect();
        advisories.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_package: HashMap<(Ecosystem, String), Vec<usize>> = HashMap::new();
        for (i, a) in advisories.iter().enumerate() {
            for aff in &a.affected {
                let Some(p) = &aff.package else { continue };
                let Some(eco) = Ecosystem::parse(&p.ecosystem) else { continue };
                let slot = by_package.entry((eco, eco.normalize(&p.name))).or_default();
                if slot.last() != Some(&i) {
                    slot.push(i);
                }
            }
        }
        AdvisoryDb { advisories, by_package }
    }

    /// How many advisories it holds.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisories naming a package (withdrawn ones excluded).
    pub fn for_package(&self, eco: Ecosystem, name: &str) -> impl Iterator<Item = &Advisory> {
        self.by_package
            .get(&(eco, eco.normalize(name)))
            .into_iter()
            .flatten()
            .map(|&i| &self.advisories[i])
            .filter(|a| a.withdrawn.is_none())
    }

    /// Reads an index file written by [`AdvisoryDb::save`].
    pub fn load(path: &Path) -> Result<AdvisoryDb, DbError> {
        let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
        let mut lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
        let header = lines
            .next()
            .ok_or_else(|| DbError::Format { path: path.display().to_string(), reason: "empty".into() })?
            .map_err(|e| DbError::Format { path: path.display().to_string(), reason: e.to_string() })?;
        if !header.contains(FORMAT) {
            return Err(DbError::Format { path: path.display().to_string(), reason: "no header".into() });
        }
        let mut list = Vec::new();
        for (n, line) in lines.enumerate() {
            let line = line.map_err(|e| io(path, e))?;
            let a: Advisory = serde_json::from_str(&line).map_err(|e| DbError::Format {
                path: path.display().to_string(),
                reason: format!("line {}: {e}", n + 2),
            })?;
            list.push(a);
        }
        Ok(AdvisoryDb::from_advisories(list))
    }

    /// Writes the index atomically (a temporary file renamed over the old one).
    pub fn save(&self, path: &Path) -> Result<(), DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let tmp = path.with_extension("tmp");
        {
            let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::default());
            let header = serde_json::json!({"format": FORMAT, "advisories": self.advisories.len()});
            writeln!(gz, "{header}").map_err(|e| io(&tmp, e))?;
            for a in &self.advisories {
                let line = serde_json::to_string(a).map_err(|e| io(&tmp, e))?;
                writeln!(gz, "{line}").map_err(|e| io(&tmp, e))?;
            }
            let mut inner = gz.finish().map_err(|e| io(&tmp, e))?;
            inner.flush().map_err(|e| io(&tmp, e))?;
            inner.get_ref().sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    }

    /// Adds advisories from files, directories (recursively) and OSV `.zip` dumps to the index at
    /// `index` (created when absent), and saves it.
    pub fn import(index: &Path, sources: &[PathBuf]) -> Result<ImportReport, DbError> {
        let mut list: Vec<Advisory> = if index.exists() { AdvisoryDb::load(index)?.advisories } else { Vec::new() };
        let mut report = ImportReport::default();
        for src in sources {
            let meta = std::fs::metadata(src).map_err(|e| io(src, e))?;
            if meta.is_dir() {
                import_dir(src, &mut list, &mut report, 0)?;
            } else if src.extension().is_some_and(|e| e == "zip") {
                import_zip(src, &mut list, &mut report)?;
            } else {
                let bytes = std::fs::read(src).map_err(|e| io(src, e))?;
                import_doc(&src.display().to_string(), &bytes, &mut list, &mut report);
            }
        }
        let db = AdvisoryDb::from_advisories(list);
        report.total = db.len();
        db.save(index)?;
        Ok(report)
    }
}

fn import_dir(dir: &Path, list: &mut Vec<Advisory>, report: &mut ImportReport, depth: usize) -> Result<(), DbError> {
    if depth > 32 {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let ft = std::fs::symlink_metadata(&p).map_err(|e| io(&p, e))?.file_type();
        if ft.is_dir() {
            import_dir(&p, list, report, depth + 1)?;
        } else if ft.is_file() && p.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "yml") {
            let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
            import_doc(&p.display().to_string(), &bytes, list, report);
        }
    }
    Ok(())
}

fn import_zip(path: &Path, list: &mut Vec<Advisory>, report: &mut ImportReport) -> Result<(), DbError> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| io(path, e))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| io(path, e))?;
        if !entry.is_file() {
            continue;
        }
        let name = format!("{}:{}", path.display(), entry.name());
        if !(name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        // Advisories are small; a huge entry is not one (and is not read whole).
        if entry.size() > 16 * 1024 * 1024 {
            report.errors.push((name, "larger than 16 MiB".into()));
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| io(path, e))?;
        import_doc(&name, &bytes, list, report);
    }
    Ok(())
}

fn import_doc(name: &str, bytes: &[u8], list: &mut Vec<Advisory>, report: &mut ImportReport) {
    let parsed: Result<Advisory, String> = if name.ends_with(".yaml") || name.ends_with(".yml") {
        serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    };
    let mut advisory = match parsed {
        Ok(a) if !a.id.trim().is_empty() => a,
        Ok(_) => return report.errors.push((name.to_owned(), "no `id`".into())),
        Err(e) => return report.errors.push((name.to_owned(), e)),
    };
    report.read += 1;
    advisory.affected.retain(|a| a.package.as_ref().is_some_and(|p| Ecosystem::parse(&p.ecosystem).is_some()));
    if advisory.affected.is_empty() {
        report.other_ecosystems += 1;
        return;
    }
    // The long text is not needed to match and would triple the index.
    advisory.details = None;
    report.kept += 1;
    if advisory.withdrawn.is_some() {
        report.withdrawn += 1;
    }
    list.push(advisory);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADV: &str = r#"{"id":"GHSA-x","summary":"bad","affected":[{"package":{"name":"lodash","ecosystem":"npm"},
        "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.20"}]}]}]}"#;

    #[test]
    fn import_save_load_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/GHSA-x.json"), ADV).unwrap();
        std::fs::write(src.join("a/b/broken.json"), "{").unwrap();
        std::fs::write(src.join("a/b/other.yaml"), "id: GO-1\naffected:\n- package: {name: x, ecosystem: Go}\n")
            .unwrap();
        let index = dir.path().join("idx/osv.jsonl.gz");
        let r = AdvisoryDb::import(&index, std::slice::from_ref(&src)).unwrap();
        assert_eq!((r.read, r.kept, r.other_ecosystems, r.errors.len(), r.total), (2, 1, 1, 1, 1), "{r:?}");
        assert!(r.errors[0].0.ends_with("broken.json"));
        let db = AdvisoryDb::load(&index).unwrap();
        assert_eq!(db.for_package(Ecosystem::Npm, "lodash").count(), 1);
        // A later import of the same id, now withdrawn, replaces it and it stops matching.
        let withdrawn = ADV.replacen("\"summary\"", "\"withdrawn\":\"2024-01-01T00:00:00Z\",\"summary\"", 1);
        std::fs::write(dir.path().join("w.json"), withdrawn).unwrap();
        let r = AdvisoryDb::import(&index, &[dir.path().join("w.json")]).unwrap();
        assert_eq!((r.withdrawn, r.total), (1, 1));
        assert_eq!(AdvisoryDb::load(&index).unwrap().for_package(Ecosystem::Npm, "lodash").count(), 0);
    }

    #[test]
    fn zip_dumps_and_bad_index_files() {
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("all.zip");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            z.start_file("GHSA-x.json", opts).unwrap();
            z.write_all(ADV.as_bytes()).unwrap();
            z.finish().unwrap();
        }
        let index = dir.path().join("osv.jsonl.gz");
        let r = AdvisoryDb::import(&index, &[zip_path]).unwrap();
        assert_eq!(r.kept, 1);
        std::fs::write(dir.path().join("bad.gz"), b"not gzip").unwrap();
        assert!(AdvisoryDb::load(&dir.path().join("bad.gz")).is_err());
        assert!(AdvisoryDb::import(&index, &[dir.path().join("missing")]).unwrap_err().to_string().contains("missing"));
    }
}
