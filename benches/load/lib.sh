# Helpers shared by the load scripts. Source it after creating `work` (a temp dir, mode 755) and
# `pids` (an array the script's cleanup kills).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# start_nginx PORT [worker_connections] [http-level directives]: serves "ok" from $work/www on
# 127.0.0.1:PORT in the foreground (its pid goes to pids), with its own config and logs.
start_nginx() {
  local port=$1 conns=${2:-1024} extra=${3:-}
  mkdir -p "$work/nginx/logs" "$work/www"
  echo ok > "$work/www/index.html"
  cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections $conns; }
http {
  access_log off;
  $extra
  server { listen 127.0.0.1:$port; root $work/www; }
}
CONF
  /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" & pids+=($!)
}
