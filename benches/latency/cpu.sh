#!/usr/bin/env bash
# capscope's CPU per request at 16 connections (C=1 for one): the shared bench's layout by hand (nginx and oha on
# CPU 1, capscope alone on CPU 0 as `run --headless` with its capture saving, HTTPS 200 B bodies
# through CONNECT + TLS), N requests with `oha -c 16 -n N`, and capscope's user+system CPU time over
# them from /proc/PID/stat. CPU time per request holds still far better than requests per second
# when other processes share the machine (they slow capscope down, but mostly do not make it work
# more). With PERF=FILE, also `perf record -F 2000 -g` on capscope for 3 s of the run (PERF_FREQ and
# PERF_CALLS replace its `-F 2000` and `-g`). With ALLOCS=1, also capscope's calls to glibc's malloc,
# realloc and free per request, counted by uprobes over the whole run (add them once: `perf probe -x
# /lib/x86_64-linux-gnu/libc.so.6 --add malloc`, the same for realloc and free); the uprobes slow
# capscope down many times, so only the counts mean anything.
#
# usage: benches/latency/cpu.sh BIN [N]
# Needs the shared bench's fixtures (../shared/bench/setup.sh), and the bench lock:
#   flock /tmp/bench.lock benches/latency/cpu.sh target/release/capscope 60000
set -euo pipefail
BIN=${1:?capscope binary}; N=${2:-60000}
command -v perf >/dev/null || { echo "needs perf" >&2; exit 1; }
. "$(dirname "$0")/layout.sh"
layout_init cpu
start_nginx
OHA=(taskset -c 1 oha --no-tui --output-format json --worker-threads 1 -n $N -c ${C:-16})
start_capscope "$BIN"; PID=$CPID
ARGS=("${CAPSCOPE_ARGS[@]}" https://127.0.0.1:$SP${P:-/small})
taskset -c 1 oha --no-tui --worker-threads 1 -n 200 -c 1 "${ARGS[@]}" > /dev/null   # warm-up
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
A=$(cpu)
if [ -n "${ALLOCS:-}" ]; then
  perf stat -x, -e probe_libc:malloc,probe_libc:realloc,probe_libc:free -p $PID -o $T/allocs 2>/dev/null & AP=$!
  sleep 0.5
fi
if [ -n "${PERF:-}" ]; then perf record ${PERF_FREQ:--F 2000} ${PERF_CALLS:--g} -p $PID -o $PERF -- sleep 3 >/dev/null 2>&1 & PP=$!; fi
"${OHA[@]}" "${ARGS[@]}" > $T/oha.json
if [ -n "${PERF:-}" ]; then wait $PP || true; fi
B=$(cpu)
if [ -n "${ALLOCS:-}" ]; then kill -INT $AP; wait $AP || true; fi
python3 - $T/oha.json $A $B <<'EOP'
import json, sys, os
d = json.load(open(sys.argv[1])); n = sum(d['statusCodeDistribution'].values())
ticks = int(sys.argv[3]) - int(sys.argv[2]); hz = os.sysconf('SC_CLK_TCK')
p = d['latencyPercentiles']
allocs = os.path.join(os.path.dirname(sys.argv[1]), 'allocs')
if os.path.exists(allocs):
    for line in open(allocs):
        f = line.strip().split(',')
        if len(f) > 2 and f[0].isdigit():
            print(f"{f[2]}: {int(f[0])/n:.1f} per request")
print(f"{n} requests, rps {d['summary']['requestsPerSec']:.0f}, p50 {p['p50']*1000:.3f} ms, proxy cpu {ticks/hz:.2f} s, {ticks/hz/n*1e6:.1f} us/request")
EOP
