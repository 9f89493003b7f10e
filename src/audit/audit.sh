# siembox VPS audit: one POSIX sh script, read from stdin by `sh -s -- BOOT_ID HEAVY SUDO`.
# BOOT_ID: the boot id the exporter cached static facts for ("-" for none); static facts are
# printed only when the boot id differs. HEAVY: the heavy sections to run this time, comma-
# separated (`updates,suid`; "-" for none), as the exporter's check table schedules them.
# SUDO: 1 when examples/sudoers-siembox-audit is installed (read-only commands via `sudo -n`).
# Every section starts with a "==siembox:NAME==" line; a missing tool prints "missing", never fails.
# Runs on dash, bash and busybox ash; everything else is optional.
export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"
cached_boot="${1:--}"
heavy=",${2:--},"
use_sudo="${3:-0}"
have() { command -v "$1" >/dev/null 2>&1; }
# Whether the heavy section $1 runs this time.
wants() { case "$heavy" in *",$1,"*) return 0 ;; esac; return 1; }
# A read-only command as root: directly when root, with `sudo -n` when allowed, else it fails.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif [ "$use_sudo" = 1 ] && have sudo; then sudo -n "$@"
  else return 126; fi
}
section() { echo "==siembox:$1=="; }

section meta
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
echo "boot_id=${boot_id:-unknown}"
echo "uid=$(id -u 2>/dev/null)"
if have nproc; then echo "cpus=$(nproc 2>/dev/null)"; else echo "cpus=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"; fi
echo "now=$(date +%s)"

if [ "$boot_id" != "$cached_boot" ]; then
  section static
  if [ -r /etc/os-release ]; then grep -E '^(ID|VERSION_ID|PRETTY_NAME)=' /etc/os-release; fi
  echo "KERNEL=$(uname -r 2>/dev/null)"
fi

section procs
# Process names from /proc: one cheap source for fail2ban, time sync and syslog checks.
cat /proc/[0-9]*/comm 2>/dev/null | grep -xE 'fail2ban-server|crowdsec|chronyd|ntpd|openntpd|systemd-timesyn|rsyslogd|syslog-ng|syslogd|systemd-journal|sshd|auditd' | sort -u

section sshd
# The settings of every sshd actually listening, not just /etc/ssh/sshd_config: a listener's
# title is "sshd: ARGV [listener] ..." (OpenSSH >= 8.2) or its bare argv; per-connection
# processes are "sshd: user...". Each listener's -f file is dumped with its Includes (relevant
# lines only), unreadable ones named, mtimes beside the listener's load time so a file edited
# but not reloaded shows; `sshd -T` runs when root, or via `sudo -n` when the sudoers allow it.
sshd_dump() { # FILE DEPTH (dash, bash and busybox ash all have `local`)
  local pat inc
  if [ ! -r "$1" ]; then echo "#siembox-unreadable $1"; return; fi
  echo "#siembox-file $1"
  echo "#siembox-mtime $(stat -c %Y "$1" 2>/dev/null)"
  grep -iE '^[[:space:]]*(permitrootlogin|passwordauthentication|kbdinteractiveauthentication|challengeresponseauthentication|usepam|permitemptypasswords|maxauthtries|allowusers|allowgroups|port|include|match)([[:space:]]|=)' "$1" 2>/dev/null
  [ "$2" -lt 3 ] || return
  for pat in $(sed -n 's/^[[:space:]]*[Ii][Nn][Cc][Ll][Uu][Dd][Ee][[:space:]=]*//p' "$1" 2>/dev/null); do
    case "$pat" in /*) ;; *) pat="/etc/ssh/$pat" ;; esac
    for inc in $pat; do
      if [ -e "$inc" ]; then sshd_dump "$inc" $(( $2 + 1 ))
      elif [ -e "${pat%/*}" ] && { [ ! -r "${pat%/*}" ] || [ ! -x "${pat%/*}" ]; }; then echo "#siembox-unreadable $pat"
      fi
    done
  done
}
btime=$(awk '/^btime/ { print $2 }' /proc/stat 2>/dev/null)
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
found=0
for c in $(grep -lx sshd /proc/[0-9]*/comm 2>/dev/null); do
  d=${c%/comm}; pid=${d#/proc/}
  cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
  case "$cmd" in *"[listener]"*) cmd=${cmd#sshd: } ;; "sshd: "*|"") continue ;; esac
  found=1
  set -- $cmd
  bin=$1; conf=/etc/ssh/sshd_config; opts=""; ports=""
  # -o KEY=VALUE on the command line comes before the file (sshd keeps the first value); -p PORT
  # replaces the file's Port lines.
  while [ $# -gt 0 ]; do
    case "$1" in
      -f) conf=${2:-$conf}; shift ;; -f*) conf=${1#-f} ;;
      -o) opts="$opts ${2:-}"; shift ;; -o*) opts="$opts ${1#-o}" ;;
      -p) ports="$ports ${2:-}"; shift ;; -p*) ports="$ports ${1#-p}" ;;
    esac; shift
  done
  # Loaded: the later of the process start and its pid file's mtime (SIGHUP re-execs in place).
  start=$(awk -v b="$btime" -v hz="$hz" '{ sub(/.*\) /, ""); printf "%d", b + $20 / hz }' "$d/stat" 2>/dev/null)
  for pf in $(sed -n 's/^[[:space:]]*[Pp][Ii][Dd][Ff][Ii][Ll][Ee][[:space:]=]*//p' "$conf" 2>/dev/null) /run/sshd.pid /var/run/sshd.pid; do
    if [ "$(cat "$pf" 2>/dev/null)" = "$pid" ]; then m=$(stat -c %Y "$pf" 2>/dev/null); [ "${m:-0}" -gt "${start:-0}" ] && start=$m; break; fi
  done
  echo "listener pid=$pid config=$conf loaded=${start:--}"
  for o in $opts; do echo "option $o"; done
  for p in $ports; do echo "option_port $p"; done
  [ -x "$bin" ] || bin=sshd
  t=$(as_root "$bin" -T -f "$conf" $(for o in $opts; do printf -- '-o %s ' "$o"; done; for p in $ports; do printf -- '-p %s ' "$p"; done) 2>/dev/null)
  if [ -n "$t" ]; then echo "effective sshd -T"; echo "$t" | grep -iE '^(permitrootlogin|passwordauthentication|kbdinteractiveauthentication|usepam|permitemptypasswords|maxauthtries|allowusers|allowgroups|port) '; fi
  sshd_dump "$conf" 0
done
if [ "$found" = 0 ]; then echo "listener pid=- config=/etc/ssh/sshd_config loaded=-"; sshd_dump /etc/ssh/sshd_config 0; fi

section firewall
if have ufw; then echo "ufw=$(as_root ufw status 2>/dev/null | head -n 1)"; else echo "ufw=missing"; fi
if have firewall-cmd; then echo "firewalld=$(firewall-cmd --state 2>&1 | head -n 1)"; else echo "firewalld=missing"; fi
if have nft; then
  if r=$(as_root nft list ruleset 2>/dev/null); then echo "nft_rules=$(echo "$r" | grep -cE '^[[:space:]]+(ip|ip6|tcp|udp|meta|ct|iif|oif|iifname|oifname|counter|accept|drop|reject|jump)')"; else echo "nft_rules=denied"; fi
else echo "nft_rules=missing"; fi
if have iptables; then
  if r=$(as_root iptables -S 2>/dev/null); then
    echo "iptables_rules=$(echo "$r" | grep -c '^-A')"
    echo "iptables_input_policy=$(echo "$r" | awk '/^-P INPUT/ {print $3}')"
  else echo "iptables_rules=denied"; fi
else echo "iptables_rules=missing"; fi
# What an ordinary user can still see: a kernel with netfilter neither loaded (/proc/modules)
# nor built in (modules.builtin) cannot hold any packet filter rule.
if [ -r /proc/modules ]; then
  echo "netfilter_loaded=$(awk '$1 ~ /^(nf_tables|ip_tables|ip6_tables|x_tables)$/ { printf "%s ", $1 }' /proc/modules)"
  b=/lib/modules/$(uname -r)/modules.builtin
  if [ -r "$b" ]; then echo "netfilter_builtin=$(grep -cE '/(nf_tables|x_tables|ip_tables|ip6_tables)\.ko' "$b")"; else echo "netfilter_builtin=unknown"; fi
fi

section fail2ban
# A running fail2ban-server protects nothing without a jail for sshd (fail2ban-client needs root).
if have fail2ban-client && grep -qsx fail2ban-server /proc/[0-9]*/comm; then
  case "$(as_root fail2ban-client status sshd 2>&1)" in
    *"Status for the jail"*) echo "sshd_jail=active" ;;
    *"does not exist"*) echo "sshd_jail=missing" ;;
    *) echo "sshd_jail=denied" ;;
  esac
  # The ports its sshd jail bans, from its configuration in fail2ban's order (jail.conf,
  # jail.d/*.conf, jail.local, jail.d/*.local; the last value wins).
  jails=""
  for f in /etc/fail2ban/jail.conf /etc/fail2ban/jail.d/*.conf /etc/fail2ban/jail.local /etc/fail2ban/jail.d/*.local; do
    if [ -r "$f" ]; then jails="$jails $f"; elif [ -e "$f" ]; then echo "jail_unreadable $f"; fi
  done
  [ -z "$jails" ] || awk 'FNR == 1 { s = "" } /^[[:space:]]*\[/ { s = $0; gsub(/[][[:space:]]/, "", s); next }
    s == "sshd" && /^[[:space:]]*port[[:space:]]*[=:]/ { sub(/^[^=:]*[=:][[:space:]]*/, ""); print "jail_port " FILENAME " " $0 }' $jails
fi

section auto_updates
if [ -d /etc/apt/apt.conf.d ]; then
  # apt reads apt.conf.d in lexical order (the glob's order) and the last setting wins;
  # cheaper than apt-config, which loads the whole apt configuration.
  echo "apt_unattended=$(cat /etc/apt/apt.conf /etc/apt/apt.conf.d/* 2>/dev/null | grep -v '^[[:space:]]*//' | sed -n 's/.*APT::Periodic::Unattended-Upgrade[[:space:]]*"\([0-9]*\)".*/\1/p' | tail -n 1)"
  if have dpkg-query; then echo "unattended_upgrades=$(dpkg-query -W -f='${Status}' unattended-upgrades 2>/dev/null)"; fi
fi
if have systemctl; then
  # apt-daily-upgrade.timer is what runs unattended-upgrades under systemd: masked, it never runs.
  for t in apt-daily-upgrade.timer dnf-automatic.timer dnf-automatic-install.timer yum-cron.service; do
    echo "unit $t=$(systemctl is-enabled "$t" 2>/dev/null)"
  done
fi
if have apk; then echo "apk=present"; fi

if wants updates; then
  section updates
  if have apt-get; then
    echo "manager=apt"
    # Counts from missing or old package lists mean nothing: the newest list (or apt's own
    # success stamp) says when they were last fetched.
    newest=$(ls -t /var/lib/apt/lists/*Packages* /var/lib/apt/lists/*Release /var/lib/apt/periodic/update-success-stamp 2>/dev/null | head -n 1)
    if [ -n "$newest" ]; then echo "lists_mtime=$(stat -c %Y "$newest" 2>/dev/null)"; else echo "lists_mtime=none"; fi
    apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null | grep '^Inst ' | awk '{ n++ } /[Ss]ecurity/ { s++ } END { print "pending=" n + 0; print "security=" s + 0 }'
  elif have dnf; then
    echo "manager=dnf"
    dnf -q -C check-update 2>/dev/null | awk 'NF == 3 && $1 ~ /\./ { n++ } END { print "pending=" n + 0 }'
    dnf -q -C updateinfo list --security 2>/dev/null | awk 'NF >= 3 { n++ } END { print "security=" n + 0 }'
  elif have yum; then
    echo "manager=yum"
    yum -q -C check-update 2>/dev/null | awk 'NF == 3 && $1 ~ /\./ { n++ } END { print "pending=" n + 0 }'
  elif have apk; then
    echo "manager=apk"
    apk version -l '<' 2>/dev/null | awk 'NR > 1 { n++ } END { print "pending=" n + 0 }'
  else
    echo "manager=missing"
  fi
fi

section reboot
if [ -e /var/run/reboot-required ] || [ -e /run/reboot-required ]; then echo "reboot_required=yes"
elif have needs-restarting; then
  if needs-restarting -r >/dev/null 2>&1; then echo "reboot_required=no"; else echo "reboot_required=yes"; fi
elif [ -d /var/lib/dpkg ]; then echo "reboot_required=no"
else echo "reboot_required=unknown"; fi

section failed_logins
# One failed attempt is logged up to three times (sshd's "Invalid user", its "Failed password",
# PAM's "authentication failure"): count sshd's "Failed <method> for" lines and PAM failures of
# other services (su, login); rsyslog's "message repeated N times" counts N. In log files only
# lines of the last 24 h count (ISO stamps compare as strings; classic ones as MMDDhh:mm:ss).
failed_awk='
  function attempts(l,  n) {
    if (l ~ /sshd(-session)?\[[0-9]+\]: /) {
      if (l !~ /Failed (password|publickey|keyboard-interactive[^ ]*|hostbased|gssapi[^ ]*) for /) return 0
    } else if (l !~ /authentication failure/ || l ~ /\(sshd:auth\)/) return 0
    n = 1
    if (match(l, /message repeated [0-9]+ times/)) { n = substr(l, RSTART + 17, RLENGTH - 23) + 0 }
    return n
  }
  function recent(  m, k) {
    if (s == "") return 1
    if ($1 ~ /^[0-9][0-9][0-9][0-9]-/) return substr($1, 1, 19) >= s
    m = index("JanFebMarAprMayJunJulAugSepOctNovDec", $1); if (m == 0) return 0
    k = sprintf("%02d%02d%s", (m + 2) / 3, $2, $3)
    return c <= nc ? (k >= c && k <= nc) : (k >= c || k <= nc)
  }
  recent() { n += attempts($0) }
  END { print "count=" n + 0 }'
# Without these groups journalctl shows only the user's own entries: no answer, not zero.
journal_all=0
if [ "$(id -u)" = 0 ] || id -Gn 2>/dev/null | grep -qwE 'systemd-journal|adm|wheel'; then journal_all=1; fi
if have journalctl && [ -n "$(journalctl -q -n 1 --no-pager 2>/dev/null)" ] && [ "$journal_all" = 0 ]; then
  echo "source=unreadable"
elif have journalctl && [ -n "$(journalctl -q -n 1 --no-pager 2>/dev/null)" ]; then
  echo "source=journal"
  journalctl -q --no-pager --since '-24h' 2>/dev/null | awk -v s= "$failed_awk"
else
  log=""
  for f in /var/log/auth.log /var/log/secure /var/log/messages; do if [ -r "$f" ]; then log=$f; break; fi; done
  if [ -n "$log" ]; then
    echo "source=file"
    day_ago=$(( $(date +%s) - 86400 ))
    awk -v s="$(date -d "@$day_ago" +%Y-%m-%dT%H:%M:%S 2>/dev/null)" \
      -v c="$(date -d "@$day_ago" +%m%d%H:%M:%S 2>/dev/null)" -v nc="$(date +%m%d%H:%M:%S)" \
      "$failed_awk" "$log"
  elif [ -e /var/log/auth.log ] || [ -e /var/log/secure ]; then
    echo "source=unreadable"
  else
    echo "source=none"
  fi
fi

section disk
# By filesystem type, not by df's source column (any name a mount was given): read-only images
# (always full) and pseudo filesystems are skipped; tmpfs counts, a full /run breaks services.
# A df without -T (old busybox) gives "-" as type.
{ df -P -T -k 2>/dev/null || df -P -k 2>/dev/null | awk '{ $1 = $1 " -"; print }'; } |
  awk 'NR > 1 && $2 !~ /^(devtmpfs|squashfs|iso9660|udf|erofs|ramfs|proc|sysfs|cgroup2?|efivarfs|nsfs|tracefs|debugfs|fuse\.(lxcfs|snapfuse))$/ { print $7, $6 }'

section memory
grep -E '^(MemTotal|MemAvailable|MemFree|Buffers|Cached):' /proc/meminfo 2>/dev/null

section load
cat /proc/loadavg 2>/dev/null

section listening
if have ss; then ss -H -l -n -t -u 2>/dev/null | awk '{ print $1, $5 }'
elif have netstat; then netstat -l -n -t -u 2>/dev/null | awk '$6 == "LISTEN" || $1 ~ /^udp/ { print $1, $4 }'
else echo "missing"; fi

section time_sync
if have timedatectl; then echo "ntp_synchronized=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)"; fi
if have chronyc; then echo "chrony_leap=$(chronyc -n tracking 2>/dev/null | awk -F': ' '/^Leap status/ { print $2 }')"; fi

section sudo
if have sudo; then echo "sudo=present"; else echo "sudo=missing"; fi
if [ -r /etc/sudoers ]; then
  echo "readable=yes"
  cat /etc/sudoers /etc/sudoers.d/* 2>/dev/null | grep -E '^[[:space:]]*Defaults' | grep -E 'syslog|logfile|log_output|log_input|log_server'
else echo "readable=no"; fi

section password_policy
if [ -r /etc/login.defs ]; then grep -E '^[[:space:]]*(PASS_MAX_DAYS|PASS_MIN_LEN)[[:space:]]' /etc/login.defs; else echo "login_defs=unreadable"; fi
for f in /etc/pam.d/common-password /etc/pam.d/system-auth /etc/pam.d/password-auth /etc/pam.d/passwd; do
  if [ -r "$f" ]; then grep -hE '^[[:space:]]*password.*(pam_pwquality|pam_cracklib|pam_passwdqc)' "$f" | sed 's/^/pam /'; fi
done
if [ -r /etc/security/pwquality.conf ]; then grep -E '^[[:space:]]*minlen[[:space:]]*=' /etc/security/pwquality.conf | sed 's/^/pwquality /'; fi

section accounts
# UID-0 accounts and empty password fields. /etc/passwd is world-readable; /etc/shadow needs root,
# or with sudo `passwd -S -a` (shadow-utils) gives each account's status. Only the names of
# accounts without a password leave the server ("status NAME NP", as passwd -S prints them),
# never a hash.
if [ -r /etc/passwd ]; then
  awk -F: '$1 !~ /^[+-]/ && $3 ~ /^[0-9]+$/ && $3 + 0 == 0 { print "uid0 " $1 }
    $1 !~ /^[+-]/ && NF > 1 && $2 == "" { print "passwd_empty " $1 }' /etc/passwd | head -n 100
else echo "passwd=unreadable"; fi
if [ -r /etc/shadow ]; then
  echo "shadow=file"
  awk -F: 'NF > 1 && $2 == "" { print "status " $1 " NP" } END { print "accounts=" NR }' /etc/shadow | tail -n 101
elif [ "$use_sudo" = 1 ] && r=$(as_root passwd -S -a 2>/dev/null) && [ -n "$r" ]; then
  echo "shadow=passwd-S"
  echo "$r" | awk '$2 == "NP" { print "status " $0 } END { print "accounts=" NR }' | tail -n 101
else echo "shadow=unreadable"; fi

section kernel
# The running kernel and the installed ones (file names only: no command, no package query).
read -r rel < /proc/sys/kernel/osrelease 2>/dev/null || rel=$(uname -r 2>/dev/null)
echo "running=$rel"
for f in /boot/vmlinuz-* /lib/modules/*; do [ -e "$f" ] && echo "installed $f"; done

section sysctl
# Hardening sysctls as `sysctl` names them, read with the shell's own `read` (no process per
# value); one that exists but cannot be read is "?".
for k in kernel/randomize_va_space kernel/kptr_restrict kernel/dmesg_restrict kernel/yama/ptrace_scope \
  kernel/unprivileged_bpf_disabled fs/protected_symlinks fs/protected_hardlinks fs/suid_dumpable \
  net/ipv4/conf/all/accept_redirects net/ipv4/conf/default/accept_redirects net/ipv4/conf/all/send_redirects \
  net/ipv4/conf/all/accept_source_route net/ipv4/conf/all/rp_filter net/ipv4/tcp_syncookies \
  net/ipv4/icmp_echo_ignore_broadcasts net/ipv6/conf/all/accept_redirects; do
  [ -e "/proc/sys/$k" ] || continue
  v=""; read -r v < "/proc/sys/$k" 2>/dev/null
  echo "$k = ${v:-?}"
done | tr / .

section mounts
# The mounts holding /tmp, /var/tmp and /dev/shm (a directory that is no mount of its own is on
# its parent's), as /proc/mounts lists them.
awk '$2 ~ /^\/(tmp|var|var\/tmp|dev|dev\/shm)?$/' /proc/mounts 2>/dev/null

section mac
# AppArmor or SELinux: the kernel's own files. AppArmor's profile list needs root; without it,
# processes confined in enforce mode (their /proc attr) show it enforces something.
for f in /sys/kernel/security/lsm /sys/module/apparmor/parameters/enabled /sys/fs/selinux/enforce; do
  v=""; [ -r "$f" ] && read -r v < "$f" 2>/dev/null
  [ -z "$v" ] || echo "$f=$v"
done
if [ -d /sys/kernel/security/apparmor ]; then
  if p=$(cat /sys/kernel/security/apparmor/profiles 2>/dev/null); then
    echo "$p" | awk '/\(enforce\)$/ { e++ } /\(complain\)$/ { c++ } END { print "apparmor_enforce=" e + 0; print "apparmor_complain=" c + 0 }'
  else
    echo "apparmor_profiles=denied"
    echo "confined_enforce=$(cat /proc/[0-9]*/attr/current 2>/dev/null | grep -c '(enforce)')"
  fi
fi
if have getenforce; then echo "getenforce=$(getenforce 2>/dev/null)"; fi

if wants suid; then
  section suid
  # Local filesystems only: network and pseudo filesystems are skipped, each mount is not crossed;
  # a tmpfs without nosuid can hold SUID programs too. What find cannot read makes the scan
  # partial: counted ("#denied_count"), the first few named.
  awk '$3 ~ /^(ext[234]|xfs|btrfs|zfs|f2fs|jfs|reiserfs|vfat)$/ || ($3 == "tmpfs" && $4 !~ /(^|,)nosuid(,|$)/) { print $2 }' /proc/mounts 2>/dev/null | sort -u | while read -r mp; do
    find "$mp" -xdev -type f -perm -4000 2>&1
  done | awk '/^find: / { d++; if (d <= 3) print "#denied " substr($0, 7); next } { print } END { print "#denied_count " d + 0 }' | sort -u | head -n 500
fi

section end
