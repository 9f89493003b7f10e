#!/usr/bin/env bash
# Soak: mixed /probe traffic (http, tcp, redis, failing targets) and SSH audits against loopback
# targets for a set time. Prints the exporter's RSS, open fds, threads and tokio tasks when idle
# before the load, every 30 s under load, and idle again after it, so growth shows. Loopback only;
# stops by itself; every process it starts is stopped on exit.
#
#   benches/load/soak.sh [seconds=120] [workers=6]
#
# Needs: curl, python3, nginx, /usr/sbin/sshd, ssh-keygen, redis-server (scripts/test-prerequisites
# installs them). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-120}
WORKERS=${2:-6}

for tool in curl python3 /usr/sbin/nginx /usr/sbin/sshd ssh-keygen redis-server; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: scripts/test-prerequisites installs it" >&2; exit 1; }
done

cargo build --release --locked -q
BIN=target/release/siembox-exporter

work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as nobody when started as root
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

. benches/load/lib.sh

# nginx: the http and tcp target.
NGINX_PORT=$(free_port)
start_nginx "$NGINX_PORT"

# A private redis-server (never the shared one).
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)

# A private sshd for the audits; four server names share it.
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/client" -C soak
ssh-keygen -q -t ed25519 -N '' -f "$work/host" -C host
SSH_PORT=$(free_port)
cat > "$work/sshd.conf" <<CONF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $work/host
PidFile $work/sshd.pid
AuthorizedKeysFile $work/client.pub
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
MaxStartups 100
MaxSessions 100
LogLevel ERROR
CONF
/usr/sbin/sshd -D -f "$work/sshd.conf" -E "$work/sshd.log" & pids+=($!)
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$work/host.pub")" > "$work/known_hosts"

CLOSED_PORT=$(free_port)   # nothing listens there: the failure paths get exercised too
cat > "$work/siembox.yml" <<CONF
modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
    timeout: 5s
  redis_ping:
    prober: redis
    timeout: 5s
    redis:
      command: PING
  vps_audit:
    prober: ssh_audit
    timeout: 60s
    ssh_audit:
      user: $(id -un)
      private_key_file: $work/client
      known_hosts_file: $work/known_hosts
      pool: {max_connections: 4, min_connections: 1}
      checks: {pending_updates: {enabled: false}, suid_files: {enabled: false}}
servers:
  - {name: soak-0, address: "127.0.0.1:$SSH_PORT"}
  - {name: soak-1, address: "127.0.0.1:$SSH_PORT"}
  - {name: soak-2, address: "127.0.0.1:$SSH_PORT"}
  - {name: soak-3, address: "127.0.0.1:$SSH_PORT"}
CONF
PORT=$(free_port)
"$BIN" --config.file "$work/siembox.yml" --web.listen-address "127.0.0.1:$PORT" --log.level warn 2>"$work/exporter.log" & EXP=$!; pids+=($EXP)
wait_http "http://127.0.0.1:$NGINX_PORT/"
wait_http "http://127.0.0.1:$PORT/-/healthy"
BASE="http://127.0.0.1:$PORT"

metric() { curl -s "$BASE/metrics" | awk -v n="$1" '$1 == n {print $2; exit}'; }
sum_metric() { curl -s "$BASE/metrics" | awk -v n="$1" -v l="$2" 'index($1, n "{") == 1 && (l == "" || index($1, l)) {s += $2} END {print s + 0}'; }
sample() { # label
  local rss fds threads tasks pooled
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$EXP/status")
  fds=$(ls "/proc/$EXP/fd" | wc -l)
  threads=$(awk '/^Threads/ {print $2}' "/proc/$EXP/status")
  tasks=$(metric siembox_runtime_alive_tasks)
  # Pooled connections hold fds and tasks by design: shown so growth can be told from a leak.
  pooled="$(metric siembox_vps_audit_connection_pool_open)+$(sum_metric siembox_pool_connections 'type="redis"')"
  printf '%-26s %8s %6s %8s %6s %11s %14s\n' "$1" "$rss" "$fds" "$threads" "$tasks" "$pooled" \
    "$(sum_metric siembox_probes_total 'result="success"')/$(sum_metric siembox_probes_total '')"
}

# Warm-up: every kind once (pools, resolver, SSH connections), then settle.
for m in "http_2xx&target=http://127.0.0.1:$NGINX_PORT/" "tcp_connect&target=127.0.0.1:$NGINX_PORT" "redis_ping&target=127.0.0.1:$REDIS_PORT"; do
  curl -s "$BASE/probe?module=$m" | grep -q '^probe_success 1' || echo "warning: warm-up probe $m failed" >&2
done
for s in 0 1 2 3; do curl -s "$BASE/probe?module=vps_audit&target=soak-$s" | grep -q '^probe_success 1' || echo "warning: audit of soak-$s failed" >&2; done
sleep 2

echo "soak: ${DURATION}s, $WORKERS probe workers + 1 audit loop, exporter pid $EXP, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s %8s %6s %8s %6s %11s %14s\n' moment rss_MiB fds threads tasks ssh+redis ok/probes
sample "start (idle, warmed up)"

END=$(( $(date +%s) + DURATION ))
# A worker asks for a mix of probes, each made distinct by `hostname` so single-flight does not
# merge them: successes over http, tcp and redis, failures to a closed port.
worker() { # id
  local n=0 args
  while [ "$(date +%s)" -lt "$END" ]; do
    n=$((n + 1))
    args=()
    for u in "http_2xx&target=http://127.0.0.1:$NGINX_PORT/" "tcp_connect&target=127.0.0.1:$NGINX_PORT" \
             "redis_ping&target=127.0.0.1:$REDIS_PORT" "tcp_connect&target=127.0.0.1:$CLOSED_PORT" \
             "http_2xx&target=http://127.0.0.1:$CLOSED_PORT/"; do
      args+=(-o /dev/null "$BASE/probe?module=$u&hostname=w$1-$n")
    done
    curl -s "${args[@]}" || true
  done
}
audits() {
  while [ "$(date +%s)" -lt "$END" ]; do
    for s in 0 1 2 3; do curl -s -o /dev/null "$BASE/probe?module=vps_audit&target=soak-$s" & done
    wait
    sleep 1
  done
}
load_pids=()
for w in $(seq 1 "$WORKERS"); do worker "$w" & load_pids+=($!); done
audits & load_pids+=($!)
elapsed=0
while [ "$(date +%s)" -lt "$END" ]; do
  sleep 5
  elapsed=$((elapsed + 5))
  if [ $((elapsed % 30)) -eq 0 ] && [ "$(date +%s)" -lt "$END" ]; then sample "under load, ${elapsed}s"; fi
done
wait "${load_pids[@]}" 2>/dev/null || true
sleep 5
sample "end (idle, 5s after)"
echo "peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$EXP/status"), CPU $(awk -v t="$(getconf CLK_TCK)" '{printf "%.1f s", ($14 + $15) / t}' "/proc/$EXP/stat")"
echo "audits: $(sum_metric siembox_vps_audit_audits_total 'status="success"') ok, $(sum_metric siembox_vps_audit_audits_total 'status="error"') failed; SSH connections opened: $(sum_metric siembox_vps_audit_ssh_connections_total '')"
echo "rejected by limits: $(sum_metric siembox_queue_rejected_total '')"
echo "failures by module and reason (the closed-port ones are intended):"
curl -s "$BASE/metrics" | awk 'index($1, "siembox_probe_failures_total{") == 1 && $2 > 0 {print "  " $1, $2}'

curl -sf "$BASE/-/healthy" >/dev/null && echo "healthy at the end" || echo "NOT healthy at the end"
