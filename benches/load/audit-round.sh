#!/bin/sh
# One round of SSH audits through the pool: N server names spread over a few local sshd
# instances, all asked for at once via /probe; prints the round's wall time, the exporter's
# peak RSS, and single-audit latency on a fresh vs a pooled connection.
#
#   benches/load/audit-round.sh [SERVERS=200] [SSHD_INSTANCES=4] [MAX_CONNECTIONS=50]
#
# Needs: /usr/sbin/sshd, ssh-keygen, curl, a release build (cargo build --release), root or a
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
INSTANCES=${2:-4}
MAXCONN=${3:-50}
BIN=${BIN:-target/release/siembox-exporter}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
W=$(mktemp -d)
PIDS=""
TEMP_USER=""   # the account this script created, deleted at exit
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
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
: > "$W/known_hosts"
PORTS=""
i=0
while [ $i -lt "$INSTANCES" ]; do
  ssh-keygen -q -t ed25519 -N '' -f "$W/host$i" -C host$i
  p=$(free_port)
  cat > "$W/sshd$i.conf" <<CONF
Port $p
ListenAddress 127.0.0.1
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
  /usr/sbin/sshd -D -f "$W/sshd$i.conf" -E "$W/sshd$i.log" &
  PIDS="$PIDS $!"
  echo "[127.0.0.1]:$p $(cut -d' ' -f1,2 "$W/host$i.pub")" >> "$W/known_hosts"
  PORTS="$PORTS $p"
  i=$((i + 1))
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
  set -- $PORTS
  n=0
  while [ $n -lt "$N" ]; do
    idx=$((n % INSTANCES + 1))
    eval port=\${$idx}
    echo "  - {name: srv-$n, address: \"127.0.0.1:$port\"}"
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

echo "audit account: $AUDIT_USER (login shell $(getent passwd "$AUDIT_USER" | cut -d: -f7))"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "single audit, fresh connection:  $(probe srv-0) s"
echo "single audit, pooled connection: $(probe srv-0) s"
echo "single audit, pooled connection: $(probe srv-0) s"
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
