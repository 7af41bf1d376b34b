#!/usr/bin/env bash
# capscope's CPU per request at 16 connections (C=1 for one): the shared bench's layout by hand (nginx and oha on
# CPU 1, capscope alone on CPU 0 as `run --headless` with its capture saving, HTTPS 200 B bodies
# through CONNECT + TLS), N requests with `oha -c 16 -n N`, and capscope's user+system CPU time over
# them from /proc/PID/stat. CPU time per request holds still far better than requests per second
# when other processes share the machine (they slow capscope down, but mostly do not make it work
# more). With PERF=FILE, also `perf record -F 2000 -g` on capscope for 3 s of the run.
#
# usage: benches/latency/cpu.sh BIN [N]
# Needs the shared bench's fixtures (../shared/bench/setup.sh), and the bench lock:
#   flock /tmp/bench.lock benches/latency/cpu.sh target/release/capscope 60000
set -euo pipefail
BIN=${1:?capscope binary}; N=${2:-60000}
F=/tmp/capscope-bench
[ -s $F/leaf.pem ] && command -v oha >/dev/null && command -v nginx >/dev/null && command -v perf >/dev/null \
  || { echo "needs the shared bench's setup (oha, nginx, $F) and perf" >&2; exit 1; }
T=$(mktemp -d /tmp/latency-cpu.XXXX)
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
OHA=(taskset -c 1 oha --no-tui --output-format json --worker-threads 1 -n $N -c ${C:-16})
CP=$(free_port); mkdir -p $T/home
CAPSCOPE_HOME=$T/home taskset -c 0 "$BIN" run --headless --listen 127.0.0.1:$CP --upstream-ca $F/ca.pem \
  --ca-dir $T/ca > $T/capscope.log 2>&1 & PID=$!; pids+=($PID)
wait_port $CP; "$BIN" ca export --ca-dir $T/ca > $T/ca.pem
ARGS=(-x http://127.0.0.1:$CP --cacert $T/ca.pem https://127.0.0.1:$SP${P:-/small})
taskset -c 1 oha --no-tui --worker-threads 1 -n 200 -c 1 "${ARGS[@]}" > /dev/null   # warm-up
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
A=$(cpu)
if [ -n "${PERF:-}" ]; then perf record -F 2000 ${PERF_CALLS:--g} -p $PID -o $PERF -- sleep 3 >/dev/null 2>&1 & PP=$!; fi
"${OHA[@]}" "${ARGS[@]}" > $T/oha.json
if [ -n "${PERF:-}" ]; then wait $PP || true; fi
B=$(cpu)
python3 - $T/oha.json $A $B <<'EOP'
import json, sys, os
d = json.load(open(sys.argv[1])); n = sum(d['statusCodeDistribution'].values())
ticks = int(sys.argv[3]) - int(sys.argv[2]); hz = os.sysconf('SC_CLK_TCK')
p = d['latencyPercentiles']
print(f"{n} requests, rps {d['summary']['requestsPerSec']:.0f}, p50 {p['p50']*1000:.3f} ms, proxy cpu {ticks/hz:.2f} s, {ticks/hz/n*1e6:.1f} us/request")
EOP
