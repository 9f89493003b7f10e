#!/usr/bin/env bash
# Schedule scale: N scheduled http_2xx targets (default 10,000) at a 30s interval against a
# local nginx for DURATION seconds; reports skipped runs, CPU, RSS (every 10 s, to show it flat) and /metrics encode time.
# Goals (SPEC §11): no skipped runs, /metrics under 20 ms, RSS within blackbox's ~30 MB.
# Usage: [OURS=binary] benches/load/schedule-scale.sh [targets] [duration_seconds]
set -euo pipefail
TARGETS=${1:-10000}
DURATION=${2:-180}
INTERVAL=${INTERVAL:-30s}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
. "$ROOT/benches/load/lib.sh"   # free_port

# OURS=path/to/binary measures another build (e.g. before and after a change).
if [ -z "${OURS:-}" ]; then
  cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
  OURS="$ROOT/target/release/siembox-exporter"
fi
BIN=$OURS

# The target: nginx on a free port with a config of our own (never :80).
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 0.0.0.0:$NGINX_PORT; location / { return 200 "ok\n"; } }
}
NGX
/usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"

# Distinct targets: nginx answers on every 127.0.0.0/8 address.
python3 - "$TARGETS" "$NGINX_PORT" "$INTERVAL" > "$WORK/siembox.yml" <<'PY'
import sys
n, port, interval = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print("modules:\n  http_2xx: {prober: http, timeout: 5s}\nschedule:")
print(f"  - module: http_2xx\n    interval: {interval}\n    jitter: {interval}\n    targets:")
for i in range(n):
    print(f"      - http://127.{1 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}:{port}/")
PY

PORT=$(free_port)
"$BIN" --config.file "$WORK/siembox.yml" --web.listen-address "127.0.0.1:$PORT" --log.level warn \
  2> "$WORK/exporter.log" &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  kill "$(cat "$WORK/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

START_TICKS=$(cpu_ticks)
START=$(date +%s)
MAX_RSS=0
METRICS_TIMES=()
RSS_SAMPLES=()
while (( $(date +%s) - START < DURATION )); do
  sleep 10
  r=$(rss_kb); (( r > MAX_RSS )) && MAX_RSS=$r
  RSS_SAMPLES+=("$(( r / 1024 ))")
  # Time to the first byte is the encoding; the rest is moving ~18 MB through loopback and curl.
  t=$(curl -s -o "$WORK/metrics.txt" -w '%{time_starttransfer}/%{time_total}' "http://127.0.0.1:$PORT/metrics")
  METRICS_TIMES+=("$t")
done
ELAPSED=$(( $(date +%s) - START ))
CPU=$(( $(cpu_ticks) - START_TICKS ))
m() { grep -E "^$1" "$WORK/metrics.txt" | awk '{s += $NF} END {print s + 0}'; }
SERIES=$(grep -c '^probe_success{' "$WORK/metrics.txt" || true)
echo "targets=$TARGETS interval=$INTERVAL duration=${ELAPSED}s"
echo "scheduled runs:   $(m siembox_schedule_runs_total)"
echo "skipped runs:     $(m siembox_schedule_skipped_runs_total)"
echo "failed probes:    $(grep -c '^probe_success{.*} 0$' "$WORK/metrics.txt" || true) of $SERIES targets (last outcome)"
echo "queue rejections: $(m siembox_queue_rejected_total)"
echo "CPU:              $(python3 -c "print(f'{$CPU/$TICKS/$ELAPSED*100:.1f}% of one core')")"
echo "RSS max:          $(( MAX_RSS / 1024 )) MiB (last $(( $(rss_kb) / 1024 )) MiB)"
echo "RSS every 10 s:   ${RSS_SAMPLES[*]} MiB"
echo "/metrics size:    $(wc -c < "$WORK/metrics.txt") bytes"
echo "/metrics seconds (first byte/all): ${METRICS_TIMES[*]}"
# Encode time alone (no network), best of 5 local fetches after the run.
for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$PORT/metrics"; done \
  | sort -n | head -1 | sed 's/^/\/metrics first byte, best of 5: /'
printf '%s\n' "${METRICS_TIMES[@]}" | cut -d/ -f1 | sort -n | awk '{ v[NR] = $1 } END { if (NR) print "/metrics first byte, median of the run: " v[int((NR + 1) / 2)] }'
# Prometheus asks for gzip: compressing ~18 MB comes before the first byte too.
for _ in 1 2 3 4 5; do curl -s --compressed -o /dev/null -w '%{time_starttransfer} %{size_download}\n' "http://127.0.0.1:$PORT/metrics"; done \
  | sort -n | head -1 | awk '{ printf "/metrics with gzip (as Prometheus asks), first byte, best of 5: %s (%d bytes sent)\n", $1, $2 }'
