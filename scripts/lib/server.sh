# Sourced by the conformance scripts: builds Gatehouse and starts it on a free loopback port with
# a fresh SQLite data directory. Sets `url`, `token` (the bootstrap admin token) and `work`, and
# stops the server and removes the directory on exit.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
cargo build --locked -q -p gatehouse
bin="$CARGO_TARGET_DIR/debug/gatehouse"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

GATEHOUSE_LOG=error "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out.log" 2>"$work/err.log" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out.log" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^gatehouse listening on //p' "$work/out.log")"
token="$(grep -o 'gat_[0-9a-f]*' "$work/out.log" | head -n 1)"
[ -n "$url" ] && [ -n "$token" ] || { echo "the server did not start" >&2; cat "$work/err.log" >&2; exit 1; }

# Stops the server and checks it shut down cleanly.
stop_server() {
  kill -TERM "$pid"
  wait "$pid"
  pid=""
}
