#!/usr/bin/env bash
# Where one request's time goes at one connection: the shared bench's layout by hand (nginx and oha on
# CPU 1, the proxy alone on CPU 0, HTTPS 200 B bodies through CONNECT + TLS), with a system-wide trace
# of scheduler and syscall events for half a second in the middle of an oha -c 1 run; then
# chain.py follows each request from oha's send to oha's receive and prints the median of every step,
# and the proxy's syscalls and context switches per request.
#
# usage: benches/latency/trace.sh capscope|direct|relay [BIN] [SECONDS]
#   capscope  oha -> capscope run --headless (capture saving, as users run it) -> nginx
#   direct    oha -> nginx (no proxy)
#   relay     oha -> a minimal TCP relay (benches/latency/relay.rs: a thread per direction, blocking
#             read -> write, no TLS, no HTTP) -> nginx: the floor for anything relaying on another core
# Needs the shared bench's fixtures (../shared/bench/setup.sh), perf, and the bench lock:
#   flock /tmp/bench.lock benches/latency/trace.sh capscope target/release/capscope
set -euo pipefail
MODE=${1:?capscope, direct or relay}; BIN=${2:-$PWD/target/release/capscope}; S=${3:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
F=/tmp/capscope-bench
[ -s $F/leaf.pem ] && command -v oha >/dev/null && command -v nginx >/dev/null && command -v perf >/dev/null \
  || { echo "needs the shared bench's setup (oha, nginx, $F) and perf" >&2; exit 1; }
T=$(mktemp -d /tmp/latency-trace.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$T/home"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
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
OHA=(taskset -c 1 oha --no-tui --output-format json --worker-threads 1 -z ${S}s -w -c 1)
case $MODE in
  direct) ARGS=(--cacert $F/ca.pem https://127.0.0.1:$SP/small) ;;
  relay)
    rustc -O "$HERE/relay.rs" -o $T/relay
    RP=$(free_port); taskset -c 0 $T/relay 127.0.0.1:$RP 127.0.0.1:$SP & pids+=($!); wait_port $RP
    ARGS=(--cacert $F/ca.pem https://127.0.0.1:$RP/small) ;;
  capscope)
    CP=$(free_port); mkdir -p $T/home
    CAPSCOPE_HOME=$T/home taskset -c 0 "$BIN" run --headless --listen 127.0.0.1:$CP --upstream-ca $F/ca.pem \
      --ca-dir $T/ca > $T/capscope.log 2>&1 & pids+=($!)
    wait_port $CP; "$BIN" ca export --ca-dir $T/ca > $T/ca.pem
    ARGS=(-x http://127.0.0.1:$CP --cacert $T/ca.pem https://127.0.0.1:$SP/small)
    taskset -c 1 oha --no-tui --worker-threads 1 -n 200 -c 1 "${ARGS[@]}" > /dev/null ;;   # warm-up
  *) echo "mode: capscope, direct or relay" >&2; exit 2 ;;
esac
(sleep 2; perf record -a -e sched:sched_wakeup -e sched:sched_switch -e raw_syscalls:sys_enter \
   -e raw_syscalls:sys_exit -o $T/trace.data -- sleep 0.5 2>/dev/null) & TP=$!
"${OHA[@]}" "${ARGS[@]}" > $T/oha.json
wait $TP || true
python3 - $T/oha.json <<'EOP'
import json, sys
d = json.load(open(sys.argv[1])); p = d["latencyPercentiles"]
print(f"oha: {sum(d['statusCodeDistribution'].values())} requests, p50 {p['p50']*1000:.3f} ms, p99 {p['p99']*1000:.3f} ms")
EOP
python3 "$HERE/chain.py" $T/trace.data $MODE
echo "trace: $T/trace.data"
