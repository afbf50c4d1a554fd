//! Staged changes: what `git commit` would record, scanned where lines were added.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::ScanError;
use crate::report::{Kind, Report};
use crate::walk::{Scan, scan_files};

/// Scans the index of the repository at `repo`: each staged file's staged content, keeping only
/// findings on lines the commit adds (an old secret elsewhere in the file is not this commit's).
/// A staged lockfile is analyzed whole: a commit that changes dependencies answers for them.
pub fn staged(scan: &Scan<'_>, repo: &Path) -> Result<Report, ScanError> {
    let patch =
        git(repo, &["diff", "--cached", "-U0", "--no-color", "--no-ext-diff", "--diff-filter=ACMR", "--no-renames"])?;
    let added = added_lines(&String::from_utf8_lossy(&patch));
    if added.is_empty() {
        return Ok(Report::default());
    }
    let (blobs, too_large) = staged_blobs(repo, added.keys(), scan.limits.max_file_bytes)?;
    let files = blobs.iter().map(|(p, d)| (p.as_str(), d.as_slice()));
    let mut report = scan_files(scan, files);
    report.skipped.extend(too_large.into_iter().map(|path| crate::report::Skipped {
        path,
        reason: format!("larger than {} bytes", scan.limits.max_file_bytes),
    }));
    report.normalize();
    report.findings.retain(|f| {
        f.kind == Kind::Dependency
            || added.get(&f.path).is_some_and(|lines| lines.range(f.line..=f.end_line).next().is_some())
    });
    Ok(report)
}

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, ScanError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "core.quotePath=false"])
        .args(args)
        .output()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(ScanError::Git(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(out.stdout)
}

/// Staged contents, and the paths too large to read.
type Blobs = (Vec<(String, Vec<u8>)>, Vec<String>);

/// The staged content of each path, read in one `git cat-file --batch`; blobs larger than
/// `max_bytes` are skipped without being held in memory.
fn staged_blobs<'a>(repo: &Path, paths: impl Iterator<Item = &'a String>, max_bytes: u64) -> Result<Blobs, ScanError> {
    let paths: Vec<String> = paths.cloned().collect();
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| ScanError::Git("no stdin".into()))?;
    let requests: String = paths.iter().filter(|p| !p.contains('\n')).map(|p| format!(":{p}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()));
    let stdout = child.stdout.take().ok_or_else(|| ScanError::Git("no stdout".into()))?;
    let mut reader = BufReader::new(stdout);
    let mut out = Vec::new();
    let mut too_large = Vec::new();
    for path in paths.iter().filter(|p| !p.contains('\n')) {
        let mut header = String::new();
        reader.read_line(&mut header).map_err(|e| ScanError::Git(e.to_string()))?;
        let mut parts = header.split_whitespace();
        let (_, kind, size) = (parts.next(), parts.next(), parts.next());
        if kind != Some("blob") {
            continue; // "missing" (a submodule or a path git cannot resolve)
        }
        let size: u64 =
            size.and_then(|s| s.parse().ok()).ok_or_else(|| ScanError::Git(format!("bad header {header:?}")))?;
        if size > max_bytes {
            // Drain the blob and its newline from the stream without keeping it.
            std::io::copy(&mut (&mut reader).take(size + 1), &mut std::io::sink())
                .map_err(|e| ScanError::Git(e.to_string()))?;
            too_large.push(path.clone());
            continue;
        }
        let mut data = vec![0; usize::try_from(size).unwrap_or(usize::MAX - 1) + 1];
        reader.read_exact(&mut data).map_err(|e| ScanError::Git(e.to_string()))?;
        data.pop();
        out.push((path.clone(), data));
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok((out, too_large))
}

/// Lines added per file, from a `-U0` patch.
fn added_lines(patch: &str) -> BTreeMap<String, BTreeSet<usize>> {
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("+++ ") {
            current = if rest == "/dev/null" { None } else { Some(unquote(rest).trim_start_matches("b/").to_string()) };
        } else if let Some(hunk) = line.strip_prefix("@@ ")
            && let Some(path) = &current
            && let Some(new) = hunk.split_whitespace().find(|p| p.starts_with('+'))
        {
            let mut it = new[1..].splitn(2, ',');
            let start: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let count: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            out.entry(path.clone()).or_default().extend(start..start + count);
        }
    }
    out.retain(|_, lines| !lines.is_empty());
    out
}

/// Undoes git's C-style quoting of unusual path names.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else { return s.to_string() };
    let mut bytes = Vec::new();
    let mut chars = inner.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = chars.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        chars.next();
                    }
                }
                bytes.push(u8::try_from(v).unwrap_or(b'?'));
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_added_lines_from_a_zero_context_patch() {
        let patch = "diff --git a/a.py b/a.py\nindex 1..2 100644\n--- a/a.py\n+++ b/a.py\n@@ -3,0 +4,2 @@ def f():\n+x\n+y\n\
                     @@ -10 +12 @@\n-old\n+new\n@@ -20,2 +22,0 @@\n-gone\n-gone\n\
                     diff --git a/gone.txt b/gone.txt\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n\
                     diff --git \"a/caf\\303\\251.txt\" \"b/caf\\303\\251.txt\"\n+++ \"b/caf\\303\\251.txt\"\n@@ -0,0 +1 @@\n+z\n";
        let got = added_lines(patch);
        assert_eq!(got["a.py"], BTreeSet::from([4, 5, 12]));
        assert_eq!(got["café.txt"], BTreeSet::from([1]));
        assert_eq!(got.len(), 2);
    }
}
