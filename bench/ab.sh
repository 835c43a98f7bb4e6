#!/usr/bin/env bash
# Paired A/B of two respite-proxy binaries: runs redis-benchmark through A, then B, PAIRS times
# (alternating, so the VM's speed drifts over both), and prints requests/s and the proxy's CPU
# per request (from /proc/<pid>/stat, all threads) for each run, then the means.
#
#   bench/ab.sh A_BIN B_BIN [test] [pairs] [pipeline] [mode]
#   e.g. bench/ab.sh /tmp/old/respite-proxy build/release/apps/respite-proxy/respite-proxy set 6 16
#
# Starts its own redis-servers (primary, and a secondary for the dual-write modes) on free ports
# and stops them at the end. N (requests per run, default 2000000 at P>1, 300000 at P=1) and
# CLIENTS (default 50) come from the environment.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
a_bin=$1 b_bin=$2 test=${3:-set} pairs=${4:-5} pipeline=${5:-16} mode=${6:-primary-only}
for b in "$a_bin" "$b_bin"; do
  [ -x "$b" ] || { echo "ab.sh: not an executable: $b" >&2; exit 2; }
done
command -v redis-benchmark >/dev/null || { echo "ab.sh: redis-benchmark not found" >&2; exit 2; }
n=${N:-$([ "$pipeline" -gt 1 ] && echo 2000000 || echo 300000)}
clients=${CLIENTS:-50}
free_port() {  # a port nothing listens on (bash only)
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
dir=$(mktemp -d)
primary=$(free_port) secondary=$(free_port) listen=$(free_port)
cleanup() {
  redis-cli -p "$primary" shutdown nosave >/dev/null 2>&1 || true
  redis-cli -p "$secondary" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
redis-server --port "$primary" --save '' --appendonly no --daemonize yes --logfile "$dir/p.log"
redis-server --port "$secondary" --save '' --appendonly no --daemonize yes --logfile "$dir/s.log"
for p in "$primary" "$secondary"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
ticks=$(getconf CLK_TCK)
run() {  # bin -> "rps cpu_us_per_request"
  redis-cli -p "$primary" flushall >/dev/null
  redis-cli -p "$secondary" flushall >/dev/null
  "$1" --listen "127.0.0.1:$listen" --primary "127.0.0.1:$primary" \
    --secondary "127.0.0.1:$secondary" --mode "$mode" --threads 1 --admin '' >"$dir/proxy.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do redis-cli -p "$listen" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local t0 t1 rps
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  rps=$(redis-benchmark -p "$listen" -c "$clients" -P "$pipeline" -n "$n" -r 100000 -t "$test" -q 2>&1 |
        tr '\r' '\n' | grep -a "per second" | tail -1 | awk '{print $2}')
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps $(echo "scale=4; ($t1-$t0)*1000000/$ticks/$n" | bc)"
}
echo "test=$test P=$pipeline mode=$mode n=$n pairs=$pairs (CPU: the proxy's, all threads, µs per request)"
for i in $(seq "$pairs"); do
  for v in A B; do
    bin=$a_bin; [ $v = B ] && bin=$b_bin
    read -r rps cpu < <(run "$bin")
    echo "$v $rps $cpu"
  done
done | tee "$dir/runs" | awk '{print "  " $1 "  " $2 " req/s  " $3 " µs"}'
awk '{r[$1]+=$2; c[$1]+=$3; k[$1]++}
     END {for (v in r) printf "mean %s: %.0f req/s, %.3f µs per request\n", v, r[v]/k[v], c[v]/k[v]}' \
  "$dir/runs" | sort
