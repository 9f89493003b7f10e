#!/usr/bin/env bash
# Side-by-side load test: siembox-exporter against blackbox_exporter, same machine, same run,
# same nginx target, same wrk settings, alternating rounds. Prints throughput, p50/p99 and RSS
# with ratios (ours / blackbox). Loopback only; every process it starts is stopped on exit.
#
#   benches/load/compare.sh [seconds-per-run] [rounds]
#
# MODULES=tcp_connect runs only that module's rows.
# PORT_RANGE="1024 65535" (root) widens net.ipv4.ip_local_port_range for the run, for both
# exporters, and restores it on exit: the tcp_connect runs reach the kernel's limit on new
# connections to one destination with the default range (benches/README.md has the arithmetic).
#
# Needs: wrk, nginx, blackbox_exporter (scripts/test-prerequisites installs nginx and builds 0.28,
# used by default; BLACKBOX=path picks another, e.g. Debian's 0.23 at
# /usr/bin/prometheus-blackbox-exporter; apt-get install wrk). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
ROUNDS=${2:-2}
THREADS=2

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
for candidate in "${BLACKBOX:-}" "${SIEMBOX_TEST_TOOLS:-/var/cache/siembox-tests}/bin/blackbox_exporter-0.28.0" \
  "$(command -v prometheus-blackbox-exporter || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then BLACKBOX=$candidate; break; fi
done
[ -n "${BLACKBOX:-}" ] || { echo "blackbox_exporter is missing: run scripts/test-prerequisites" >&2; exit 1; }
echo "blackbox_exporter: $BLACKBOX ($("$BLACKBOX" --version 2>&1 | head -1))"

# OURS=path/to/binary compares another build (e.g. before and after a change).
if [ -z "${OURS:-}" ]; then
  cargo build --release --locked -q
  OURS=target/release/siembox-exporter
fi

work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as nobody when started as root
pids=()
old_range=""   # the port range to restore, when PORT_RANGE changed it
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"
  if [ -n "$old_range" ]; then sysctl -q -w net.ipv4.ip_local_port_range="$old_range"; fi
}
trap cleanup EXIT
if [ -n "${PORT_RANGE:-}" ]; then
  old_range=$(sysctl -n net.ipv4.ip_local_port_range)
  sysctl -q -w net.ipv4.ip_local_port_range="$PORT_RANGE"
fi
echo "net.ipv4.ip_local_port_range: $(sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' '), tcp_tw_reuse $(sysctl -n net.ipv4.tcp_tw_reuse)"

. benches/load/lib.sh

NGINX_PORT=$(free_port)
start_nginx "$NGINX_PORT" 4096 "keepalive_requests 100000;"

cat > "$work/modules.yml" <<CONF
modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
    timeout: 5s
CONF
BB_PORT=$(free_port); OUR_PORT=$(free_port)
"$BLACKBOX" --config.file="$work/modules.yml" --web.listen-address="127.0.0.1:$BB_PORT" --log.level=error >"$work/bb.log" 2>&1 & BB_PID=$!; pids+=($BB_PID)
"$OURS" --config.file="$work/modules.yml" --web.listen-address="127.0.0.1:$OUR_PORT" --log.level=error >"$work/ours.log" 2>&1 & OUR_PID=$!; pids+=($OUR_PID)
wait_http "http://127.0.0.1:$NGINX_PORT/"
wait_http "http://127.0.0.1:$BB_PORT/-/healthy"
wait_http "http://127.0.0.1:$OUR_PORT/-/healthy"

# wrk's latency lines are like "99%   12.34ms"; normalise to milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000} print v}'; }
# Every request is a distinct probe: without this, siembox-exporter's single-flight would merge
# concurrent identical requests into one probe and the comparison would flatter it. http targets
# get a changing query string (nginx ignores it), tcp ones a changing `hostname` parameter (no
# effect on either exporter's tcp probe).
cat > "$work/distinct.lua" <<'LUA'
local threads = 0
setup = function(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local counter = 0
request = function()
  counter = counter + 1
  local n = tostring(id or 0) .. "-" .. counter
  local path = wrk.path
  if string.find(path, "module=http", 1, true) then
    path = path .. "%3Fn%3D" .. n
  else
    path = path .. "&hostname=n" .. n
  end
  return wrk.format("GET", path)
end
LUA
run_wrk() { # port module target conns → "rps p50ms p99ms errors"
  local out
  out=$(wrk -t"$THREADS" -c"$4" -d"${DURATION}s" --latency -s "$work/distinct.lua" "http://127.0.0.1:$1/probe?module=$2&target=$3")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  echo "$rps $p50 $p99 $non2xx"
}
# Probes ours answered with probe_success 0 (a fast failure must not pass for throughput).
our_failures() { curl -fs "http://127.0.0.1:$OUR_PORT/metrics" | awk '/^siembox_probes_total\{.*result="failure"/ { s += $NF } END { print s + 0 }'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

printf '%-12s %5s | %10s %8s %8s %8s | %10s %8s %8s %8s | %6s %6s %6s %6s\n' \
  scenario conns bb_rps bb_p50 bb_p99 bb_rssMB our_rps our_p50 our_p99 our_rssMB x_rps x_p99 x_p50 x_rss
for scenario in "http_2xx http://127.0.0.1:$NGINX_PORT/" "tcp_connect 127.0.0.1:$NGINX_PORT"; do
  set -- $scenario; module=$1; target=$2
  case " ${MODULES:-http_2xx tcp_connect} " in *" $module "*) ;; *) continue ;; esac
  for conns in 16 64; do
    sum() { awk '{for(i=1;i<=NF;i++) s[i]+=$i} END {for(i=1;i<=NF;i++) printf "%s ", s[i]/NR; print ""}'; }
    bb_runs=""; our_runs=""; failed_before=$(our_failures)
    for _ in $(seq 1 "$ROUNDS"); do
      bb_runs+="$(run_wrk "$BB_PORT" "$module" "$target" "$conns")"$'\n'
      our_runs+="$(run_wrk "$OUR_PORT" "$module" "$target" "$conns")"$'\n'
    done
    read -r bb_rps bb_p50 bb_p99 bb_err <<<"$(printf '%s' "$bb_runs" | sum)"
    read -r our_rps our_p50 our_p99 our_err <<<"$(printf '%s' "$our_runs" | sum)"
    bb_rss=$(awk -v k="$(hwm_kb $BB_PID)" 'BEGIN{printf "%.1f", k/1024}')
    our_rss=$(awk -v k="$(hwm_kb $OUR_PID)" 'BEGIN{printf "%.1f", k/1024}')
    awk -v m="$module" -v c="$conns" -v br="$bb_rps" -v b5="$bb_p50" -v b9="$bb_p99" -v bm="$bb_rss" \
        -v orps="$our_rps" -v o5="$our_p50" -v o9="$our_p99" -v om="$our_rss" 'BEGIN {
      printf "%-12s %5d | %10.0f %8.2f %8.2f %8.1f | %10.0f %8.2f %8.2f %8.1f | %6.2f %6.2f %6.2f %6.2f\n",
        m, c, br, b5, b9, bm, orps, o5, o9, om, orps/br, (b9>0?o9/b9:0), (b5>0?o5/b5:0), (bm>0?om/bm:0) }'
    failed=$(( $(our_failures) - failed_before ))
    if [ "$failed" != 0 ]; then echo "  note: $failed of ours' probes failed (probe_success 0)"; fi
    if [ "${bb_err%.*}" != 0 ] || [ "${our_err%.*}" != 0 ]; then echo "  note: non-2xx answers: blackbox ${bb_err}, ours ${our_err}"; fi
  done
done
echo "ratios: x_rps = ours/blackbox throughput (goal >= 4), x_p99 = ours/blackbox p99 (goal <= 0.25), x_rss = peak RSS ratio (goal <= 1)"
# A sanity check that both actually probed successfully.
for p in "$BB_PORT" "$OUR_PORT"; do
  curl -fs "http://127.0.0.1:$p/probe?module=http_2xx&target=http://127.0.0.1:$NGINX_PORT/" | grep -q '^probe_success 1' \
    || echo "warning: the exporter on port $p did not report probe_success 1" >&2
done
