#!/usr/bin/env bash
# What any relay on another core costs on this machine, beside what capscope costs: the shared bench's
# one-connection workloads (HTTPS 64 MiB bodies, 8 GETs; HTTPS 200 B bodies for S seconds, p50) run
# straight at nginx, through the do-nothing TCP relay (relay.rs: TLS end to end, nothing parsed) and
# through `capscope run --headless` (capture saving), in the shared bench's layout (layout.sh), the
# three alternated in every round with the order turned each round, so that the machine's drift from
# minute to minute falls on all three alike. Each 64 MiB run also reports how busy each core was
# (/proc/stat): with oha and nginx on CPU 1 and the proxy on CPU 0, a CPU 1 near 100% says the
# client+origin core, not the proxy, sets the pace.
#
# usage: benches/latency/floor.sh BIN [ROUNDS] [S]       (defaults: 4 rounds, 5 s of small requests)
#   HOME_DIR=/dev/shm/x   put capscope's capture there (default: a directory under /tmp, on disk)
# Needs the shared bench's fixtures (../shared/bench/setup.sh) and the bench lock:
#   flock /tmp/bench.lock benches/latency/floor.sh target/release/capscope 6
set -euo pipefail
BIN=${1:?capscope binary}; ROUNDS=${2:-4}; S=${3:-5}
. "$(dirname "$0")/layout.sh"
layout_init floor
start_nginx
start_relay
start_capscope "$BIN" "${HOME_DIR:-}"
declare -A VIA=(
  [direct]="--cacert $F/ca.pem https://127.0.0.1:$SP"
  [relay]="--cacert $F/ca.pem https://127.0.0.1:$RP"
  [capscope]="${CAPSCOPE_ARGS[*]} https://127.0.0.1:$SP"
)
for m in direct relay capscope; do   # warm-up: connections, leaf certificate, page cache
  taskset -c 1 oha --no-tui --worker-threads 1 -n 200 -c 1 ${VIA[$m]}/small > /dev/null
  taskset -c 1 oha --no-tui --worker-threads 1 -n 2 -c 1 ${VIA[$m]}/64m > /dev/null
done
busy() { awk -v c=$1 '$1==c {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
: > $T/runs.tsv
ORDERS=("direct relay capscope" "capscope direct relay" "relay capscope direct")
for r in $(seq 1 $ROUNDS); do
  for m in ${ORDERS[$(( (r - 1) % 3 ))]}; do
    read a0 i0 < <(busy cpu0); read a1 i1 < <(busy cpu1)
    taskset -c 1 oha --no-tui --output-format json --worker-threads 1 -t 30s -n 8 -c 1 ${VIA[$m]}/64m > $T/big.json
    read b0 j0 < <(busy cpu0); read b1 j1 < <(busy cpu1)
    taskset -c 1 oha --no-tui --output-format json --worker-threads 1 -z ${S}s -w -c 1 ${VIA[$m]}/small > $T/small.json
    python3 - $r $m $T/big.json $T/small.json $a0 $i0 $a1 $i1 $b0 $j0 $b1 $j1 >> $T/runs.tsv <<'EOP'
import json, sys
r, m, big, small = sys.argv[1:5]
a0, i0, a1, i1, b0, j0, b1, j1 = map(float, sys.argv[5:13])
d = json.load(open(big)); n = sum(d["statusCodeDistribution"].values())
mibs = n * 64 / d["summary"]["total"] if n == 8 else float("nan")
p50 = json.load(open(small))["latencyPercentiles"]["p50"] * 1000
pct = lambda b, i: 100 * b / (b + i) if b + i else 0.0
print(f"{r}\t{m}\t{mibs:.1f}\t{pct(b0 - a0, j0 - i0):.0f}\t{pct(b1 - a1, j1 - i1):.0f}\t{p50:.3f}")
EOP
    tail -1 $T/runs.tsv
  done
done
python3 - $T/runs.tsv <<'EOP'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, m, mibs, c0, c1, p50 = line.split("\t")
    runs[r][m] = (float(mibs), int(c0), int(c1), float(p50))
print("\nround  64 MiB c=1: MiB/s direct / relay / capscope (x direct)      CPU1 busy d/r/c    200 B c=1 p50 direct, added: relay / capscope")
for r, x in runs.items():
    d, rl, c = x["direct"], x["relay"], x["capscope"]
    print(f"{r:>5}  {d[0]:6.1f} / {rl[0]:6.1f} ({rl[0] / d[0]:.2f}x) / {c[0]:6.1f} ({c[0] / d[0]:.2f}x)"
          f"      {d[2]:3d}/{rl[2]:3d}/{c[2]:3d}%        {d[3]:.3f} ms, +{rl[3] - d[3]:.3f} / +{c[3] - d[3]:.3f} ms")
col = lambda m, k: [x[m][k] / x["direct"][k] if k == 0 else x[m][k] - x["direct"][k] for x in runs.values()]
med = statistics.median
print(f"median  64 MiB x direct: relay {med(col('relay', 0)):.2f}x, capscope {med(col('capscope', 0)):.2f}x;"
      f"  200 B c=1 added p50: relay +{med(col('relay', 3)):.3f} ms, capscope +{med(col('capscope', 3)):.3f} ms")
EOP
