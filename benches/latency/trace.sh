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
command -v perf >/dev/null || { echo "needs perf" >&2; exit 1; }
. "$(dirname "$0")/layout.sh"
layout_init trace
start_nginx
OHA=(taskset -c 1 oha --no-tui --output-format json --worker-threads 1 -z ${S}s -w -c 1)
case $MODE in
  direct) ARGS=(--cacert $F/ca.pem https://127.0.0.1:$SP/small) ;;
  relay)
    start_relay
    ARGS=(--cacert $F/ca.pem https://127.0.0.1:$RP/small) ;;
  capscope)
    start_capscope "$BIN"
    ARGS=("${CAPSCOPE_ARGS[@]}" https://127.0.0.1:$SP/small)
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
