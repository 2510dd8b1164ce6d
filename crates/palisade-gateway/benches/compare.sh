#!/usr/bin/env bash
# Gateway bench: one hello-world upstream, then in rotating rounds the upstream direct, the
# gateway with no policy, the gateway with the default policy (timeout, breaker, bulkhead,
# rate limit), and nginx / HAProxy when installed (`INSTALL=1` installs them and wrk from
# Debian's packages). Load comes from `wrk` when installed, else from the `load` example,
# each in its own process. Each line also gives the CPU time (user + system, microseconds) the
# target's own processes spent per request, which a loaded machine skews far less than req/s
# (for `direct` that is the upstream's; for the proxies it leaves the upstream's out).
# `CARGO` names the cargo to build with (default `cargo`).
# Usage: bash crates/palisade-gateway/benches/compare.sh [SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
SECS=${1:-5}; CONNS=${2:-32}; ROUNDS=${3:-3}
cd "$(dirname "$0")/../../.."
if [[ "${INSTALL:-0}" == 1 ]]; then
  for p in wrk nginx haproxy; do command -v "$p" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nginx-light haproxy; break; }; done
fi
"${CARGO:-cargo}" build --release -q -p palisade-gateway --bin palisade-gateway --example load
BIN=target/release/palisade-gateway; LOAD=target/release/examples/load
TMP=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
UP=127.0.0.1:18000
"$LOAD" serve $UP >/dev/null & PIDS+=($!)
declare -A PID=([direct]=$!)
cat >"$TMP/plain.toml" <<TOML
[[listeners]]
address = "127.0.0.1:18081"
[admin]
address = "127.0.0.1:18091"
[upstreams.up]
endpoints = ["$UP"]
[fallback]
forward = { upstream = "up" }
TOML
cat >"$TMP/policy.toml" <<TOML
[[listeners]]
address = "127.0.0.1:18082"
[admin]
address = "127.0.0.1:18092"
[upstreams.up]
endpoints = ["$UP"]
[fallback]
timeout = { timeout = "5s" }
breaker = { window = { count = 100 }, minimum_calls = 100 }
bulkhead = { max_concurrent = 1024 }
rate_limit = { quotas = [{ limit = 100000000, window = "1s" }] }
forward = { upstream = "up" }
TOML
RUST_LOG=warn "$BIN" --config "$TMP/plain.toml" >/dev/null & PIDS+=($!); PID[gateway]=$!
RUST_LOG=warn "$BIN" --config "$TMP/policy.toml" >/dev/null & PIDS+=($!); PID[gateway+policy]=$!
declare -A URL=([direct]="http://$UP/" [gateway]="http://127.0.0.1:18081/" [gateway+policy]="http://127.0.0.1:18082/")
if command -v nginx >/dev/null; then
  cat >"$TMP/nginx.conf" <<NGINX
worker_processes auto; pid $TMP/nginx.pid; error_log $TMP/nginx.err; daemon off;
events { worker_connections 4096; }
http { access_log off; upstream up { server $UP; keepalive 64; }
  server { listen 127.0.0.1:18083; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
  nginx -c "$TMP/nginx.conf" & PIDS+=($!); PID[nginx]=$!; URL[nginx]="http://127.0.0.1:18083/"
fi
if command -v haproxy >/dev/null; then
  cat >"$TMP/haproxy.cfg" <<HAP
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend f
  bind 127.0.0.1:18084
  default_backend b
backend b
  http-reuse always
  server s1 $UP
HAP
  haproxy -f "$TMP/haproxy.cfg" & PIDS+=($!); PID[haproxy]=$!; URL[haproxy]="http://127.0.0.1:18084/"
fi
# Clock ticks of user + system time of a process and its children (nginx's workers).
ticks() { local t=0 c u s; for c in "$1" $(pgrep -P "$1" || true); do
  read -r u s < <(awk '{print $14, $15}' "/proc/$c/stat" 2>/dev/null || echo "0 0"); t=$((t + u + s)); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
sleep 1
for round in $(seq "$ROUNDS"); do
  for name in "${!URL[@]}"; do
    before=$(ticks "${PID[$name]}")
    if command -v wrk >/dev/null; then
      raw=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "${URL[$name]}")
      out=$(echo "$raw" | grep -E "Requests/sec|50%|99%" | tr -s ' ' | tr '\n' ' ')
      n=$(echo "$raw" | awk '/requests in/ {print $1}')
    else
      out=$("$LOAD" run "${URL[$name]}" "$CONNS" "$SECS")
      n=$(echo "$out" | grep -oE 'requests=[0-9]+' | cut -d= -f2 || true)
    fi
    after=$(ticks "${PID[$name]}")
    cpu="-"; [[ -n "${n:-}" && "${n:-0}" -gt 0 ]] && cpu=$(( (after - before) * 1000000 / HZ / n ))
    echo "round=$round target=$name $out cpu_us_per_req=$cpu"
  done
done
