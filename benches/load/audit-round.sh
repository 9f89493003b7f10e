#!/bin/sh
# One round of SSH audits through the pool: N servers, each on a loopback address of its own
# (127.0.0.2, 127.0.0.3, …; sshd instances on one port, 16 addresses each, OpenSSH's most), all
# asked for at once via /probe; prints the round's wall time, the exporter's peak RSS, a single
# audit's latency on a fresh vs a pooled connection, and what one light audit costs the audited
# side in CPU (sshd's session processes with the script and every command it runs).
#
#   benches/load/audit-round.sh [SERVERS=200] [SSHD_INSTANCES] [MAX_CONNECTIONS=50]
#
# SSHD_INSTANCES empty or 0 (the default): one address per server. A number: the servers share
# that many addresses, one sshd each (the layout of the figures before 2026-11-30; the pool then
# reuses a few connections for many names).
#
# Needs: /usr/sbin/sshd, ssh-keygen, curl, bc, a release build (cargo build --release), root or a
# user sshd accepts. Heavy checks (pending updates, SUID scan) are off: the SPEC goal is a round
# "with the heavy checks cached".
#
# The audits log in as a dedicated account, as SPEC's examples do (`user: audit`): run as root, the
# script creates a temporary user with /bin/sh as its shell and deletes it at exit. sshd runs every
# command through the account's login shell, so an account whose shell start-up is heavy (root
# here: bash reads ~/.bashrc, which runs `pyenv init`, 0.2 CPU-s a login) measures that, not the
# audit. AUDIT_USER=name uses an existing account instead (AUDIT_USER=root for that comparison).
set -eu
N=${1:-200}
SHARED=${2:-0}
MAXCONN=${3:-50}
PER_SSHD=16   # OpenSSH listens on at most 16 addresses (MAX_LISTEN_SOCKS)
if [ "$SHARED" -gt 0 ]; then ENDPOINTS=$SHARED; else ENDPOINTS=$N; fi
[ "$ENDPOINTS" -le 64000 ] || { echo "at most 64000 addresses" >&2; exit 1; }
INSTANCES=$(( (ENDPOINTS + PER_SSHD - 1) / PER_SSHD ))
# Endpoint e (0-based) listens on 127.0.A.B: 127.0.0.2 upwards, skipping .0, .1 and .255.
addr() { echo "127.0.$(( $1 / 250 )).$(( $1 % 250 + 2 ))"; }
BIN=${BIN:-target/release/siembox-exporter}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
W=$(mktemp -d)
PIDS=""
TEMP_USER=""   # the account this script created, deleted at exit
LISTENERS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  # unshare ignores SIGTERM while it waits; SIGKILL makes it kill its sshd (--kill-child), and
  # with it the namespace and every connection process in it.
  for p in $LISTENERS; do kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "$TEMP_USER" ]; then sleep 0.2; userdel "$TEMP_USER" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
chmod 755 "$W"   # the audit account reads the authorized key from here
if [ -z "${AUDIT_USER:-}" ] && [ "$(id -u)" = 0 ]; then
  AUDIT_USER=siembox-bench-$$
  # '*' as password: no password login, but not a locked account (sshd refuses those without PAM).
  useradd -M -d "$W" -s /bin/sh -p '*' "$AUDIT_USER"
  TEMP_USER=$AUDIT_USER
fi
AUDIT_USER=${AUDIT_USER:-$(id -un)}
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$W/client" -C bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Each sshd in a PID namespace of its own (root only), as each server has its own processes: the
# audit's sshd section reads every listening sshd it can see (about 0.015 CPU-s each), so 13
# instances side by side would make every audit pay for 13 listeners instead of one.
ISOLATE=""
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then ISOLATE="unshare --pid --fork --mount-proc --kill-child"; fi
: > "$W/known_hosts"
PORT=$(free_port)
i=0
while [ $i -lt "$INSTANCES" ]; do
  ssh-keygen -q -t ed25519 -N '' -f "$W/host$i" -C host$i
  {
    echo "Port $PORT"
    e=$((i * PER_SSHD))
    while [ $e -lt $(( (i + 1) * PER_SSHD )) ] && [ $e -lt "$ENDPOINTS" ]; do
      echo "ListenAddress $(addr $e)"
      echo "[$(addr $e)]:$PORT $(cut -d' ' -f1,2 "$W/host$i.pub")" >> "$W/known_hosts"
      e=$((e + 1))
    done
    cat <<CONF
HostKey $W/host$i
PidFile $W/sshd$i.pid
AuthorizedKeysFile $W/client.pub
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
MaxStartups 1000
MaxSessions 1000
LogLevel ERROR
CONF
  } > "$W/sshd$i.conf"
  $ISOLATE /usr/sbin/sshd -D -f "$W/sshd$i.conf" -E "$W/sshd$i.log" </dev/null >/dev/null 2>&1 &
  LISTENERS="$LISTENERS $!"
  i=$((i + 1))
done
# Every instance listening before the exporter starts (sshd writes its pid file once bound).
for _ in $(seq 100); do
  up=0; i=0
  while [ $i -lt "$INSTANCES" ]; do [ -s "$W/sshd$i.pid" ] && up=$((up + 1)); i=$((i + 1)); done
  [ $up -eq "$INSTANCES" ] && break
  sleep 0.1
done
LISTEN=$(free_port)
{
  echo "modules:"
  echo "  vps_audit:"
  echo "    prober: ssh_audit"
  echo "    timeout: 120s"
  echo "    ssh_audit:"
  echo "      user: $AUDIT_USER"
  echo "      private_key_file: $W/client"
  echo "      known_hosts_file: $W/known_hosts"
  echo "      pool: {max_connections: $MAXCONN, min_connections: 5}"
  echo "      checks: {pending_updates: {enabled: false}, suid_files: {enabled: false}}"
  echo "servers:"
  n=0
  while [ $n -lt "$N" ]; do
    echo "  - {name: srv-$n, address: \"$(addr $((n % ENDPOINTS))):$PORT\"}"
    n=$((n + 1))
  done
} > "$W/siembox.yml"
"$BIN" --config.file "$W/siembox.yml" --web.listen-address "127.0.0.1:$LISTEN" --log.level warn &
EXP=$!
PIDS="$PIDS $EXP"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$LISTEN/-/ready" >/dev/null && break; sleep 0.1; done
probe() { curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$LISTEN/probe?module=vps_audit&target=$1"; }
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$EXP/status; }
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.1f s", ($14 + $15) / t }' /proc/$EXP/stat; }
# Busy CPU seconds of the whole machine (all cores): the audited sshd and scripts run here too,
# so this shows what bounds a round when the exporter itself is nearly idle.
busy() { awk -v t="$(getconf CLK_TCK)" '/^cpu / { printf "%.1f", ($2 + $3 + $4 + $7 + $8) / t }' /proc/stat; }
hwm() { awk '/VmHWM/ {print $2 / 1024 " MiB"}' /proc/$EXP/status; }

# CPU seconds an sshd instance's connections used: its per-connection processes (user+system,
# with their reaped children: the shell, the script and every command it ran). Between audits
# no shell is alive, so the difference over K audits is what they cost the audited server.
descendants() { for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
sshd_cpu() {
  for p in $(descendants "$1"); do cat /proc/"$p"/stat 2>/dev/null; done |
    awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); s += $12 + $13 + $14 + $15 } END { printf "%.3f", s / t }'
}
exp_cpu() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.3f", ($12 + $13) / t }' /proc/$EXP/stat; }

echo "audit account: $AUDIT_USER (login shell $(getent passwd "$AUDIT_USER" | cut -d: -f7)); $N servers on $ENDPOINTS addresses, $INSTANCES sshd instances${ISOLATE:+, each in its own PID namespace}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "single audit, fresh connection:  $(probe srv-0) s"
echo "single audit, pooled connection: $(probe srv-0) s"
echo "single audit, pooled connection: $(probe srv-0) s"
K=20
set -- $LISTENERS
first_sshd=$1
c0=$(sshd_cpu "$first_sshd"); e0=$(exp_cpu); t0=$(date +%s.%N)
for _ in $(seq $K); do probe srv-0 >/dev/null; done
t1=$(date +%s.%N); c1=$(sshd_cpu "$first_sshd"); e1=$(exp_cpu)
echo "$K pooled audits of one server, one after another: $(echo "scale=3; ($t1 - $t0) / $K" | bc) s each; audited side $(echo "scale=3; ($c1 - $c0) / $K" | bc) CPU-s each (sshd session, shell, script); exporter $(echo "scale=4; ($e1 - $e0) / $K" | bc) CPU-s each"
start=$(date +%s.%N); busy0=$(busy)
seq 0 $((N - 1)) | xargs -P "$N" -I{} curl -s "http://127.0.0.1:$LISTEN/probe?module=vps_audit&target=srv-{}" \
  | grep -c '^probe_success 1' > "$W/ok"
end=$(date +%s.%N); busy1=$(busy)
echo "round 1 (cold pool): $N servers, $(cat "$W/ok") succeeded in $(echo "$end - $start" | bc) s; RSS $(rss), peak $(hwm), exporter CPU so far $(cpu); machine busy $(echo "$busy1 - $busy0" | bc) CPU-s of $(echo "($end - $start) * $(nproc)" | bc | cut -d. -f1) available"
start=$(date +%s.%N); busy0=$(busy)
seq 0 $((N - 1)) | xargs -P "$N" -I{} curl -s "http://127.0.0.1:$LISTEN/probe?module=vps_audit&target=srv-{}" \
  | grep -c '^probe_success 1' > "$W/ok"
end=$(date +%s.%N); busy1=$(busy)
echo "round 2 (warm pool): $N servers, $(cat "$W/ok") succeeded in $(echo "$end - $start" | bc) s; RSS $(rss), peak $(hwm), exporter CPU so far $(cpu); machine busy $(echo "$busy1 - $busy0" | bc) CPU-s of $(echo "($end - $start) * $(nproc)" | bc | cut -d. -f1) available"
curl -s "http://127.0.0.1:$LISTEN/metrics" | grep -E '^siembox_vps_audit_(connection_pool_(open|max)|ssh_connections_total|audits_total)'
