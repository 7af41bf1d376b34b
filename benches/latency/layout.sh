# The shared bench's layout by hand, sourced by the scripts beside it (cpu.sh, trace.sh, floor.sh):
# nginx with the bench's configuration on CPU 1 (HTTPS on $SP), and in the proxy's place on CPU 0
# either `capscope run --headless` (capture saving, as users run it) or the do-nothing TCP relay
# (relay.rs). Not a script of its own: it defines functions and starts nothing until asked.
#
#   . "$(dirname "$0")/layout.sh"; layout_init NAME   # checks the fixtures, makes $T, cleans up at exit
#   start_nginx                                        # sets $SP
#   start_capscope BIN [HOME]                          # sets $CP, $CPID; oha args in CAPSCOPE_ARGS
#   start_relay                                        # sets $RP, $RPID (built once per $T)
F=/tmp/capscope-bench
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pids=()

layout_init() {
  [ -s $F/leaf.pem ] && command -v oha >/dev/null && command -v nginx >/dev/null \
    || { echo "needs the shared bench's setup (../shared/bench/setup.sh: oha, nginx, $F)" >&2; exit 1; }
  T=$(mktemp -d "/tmp/latency-$1.XXXX")
  trap layout_cleanup EXIT
  machine >&2
}

# One line naming the processor: figures from two machines of the same kind do not compare (one
# day's host had VAES, which ring's AES-GCM uses, another's did not; docs/performance.md).
machine() {
  awk -F': *' -v cpus="$(nproc)" -v up="$(awk '{print int($1 / 60)}' /proc/uptime)" '
    /^model name/ && !name { name = $2 }
    /^cpu family/ && !family { family = $2 }
    /^model[ \t]*:/ && !model { model = $2 }
    /^flags/ && / vaes( |$)/ { vaes = "yes" }
    END { printf "# machine: %s (family %s, model %s), %s CPUs, VAES %s, up %s min\n",
          name, family, model, cpus, vaes ? vaes : "no", up }' /proc/cpuinfo
}

layout_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T/home"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

start_nginx() {
  SP=$(free_port); mkdir -p $T/nginx
  cat > $T/nginx.conf <<EOC
daemon off; worker_processes 1; pid $T/nginx.pid; error_log $T/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_timeout 120s; keepalive_requests 100000000;
  client_body_temp_path $T/nginx; proxy_temp_path $T/nginx; fastcgi_temp_path $T/nginx;
  uwsgi_temp_path $T/nginx; scgi_temp_path $T/nginx; default_type application/octet-stream;
  server { listen 127.0.0.1:$SP ssl; root $F/www;
    ssl_certificate $F/leaf.pem; ssl_certificate_key $F/leaf.key; ssl_protocols TLSv1.2 TLSv1.3; }
}
EOC
  taskset -c 1 nginx -c $T/nginx.conf -e $T/nginx.err & pids+=($!)
  wait_port $SP
}

# capscope as the shared bench runs it; its CA exported to $T/ca.pem. HOME (default $T/home) is where
# the capture goes: /dev/shm for one in RAM.
start_capscope() {
  local bin=$1 home=${2:-$T/home}
  CP=$(free_port); mkdir -p "$home"
  CAPSCOPE_HOME=$home taskset -c 0 "$bin" run --headless --listen 127.0.0.1:$CP --upstream-ca $F/ca.pem \
    --ca-dir $T/ca > $T/capscope.log 2>&1 & CPID=$!; pids+=($CPID)
  wait_port $CP; "$bin" ca export --ca-dir $T/ca > $T/ca.pem
  CAPSCOPE_ARGS=(-x http://127.0.0.1:$CP --cacert $T/ca.pem)
}

start_relay() {
  [ -x $T/relay ] || rustc -O "$HERE/relay.rs" -o $T/relay
  RP=$(free_port); taskset -c 0 $T/relay 127.0.0.1:$RP 127.0.0.1:$SP & RPID=$!; pids+=($RPID)
  wait_port $RP
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
