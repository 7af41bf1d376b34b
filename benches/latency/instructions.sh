#!/usr/bin/env bash
# Instructions capscope executes per request, counted by callgrind: the same for the same binary and
# input whatever else the machine is doing, where CPU time on this virtual machine moves by a fifth
# from one run to the next. Use it to compare two builds of capscope (a change of code, of profile)
# on what they do per request; CPU time (cpu.sh) says what that costs on a given machine.
#
# The shared bench's layout by hand (layout.sh): nginx and oha on CPU 1, `capscope run --headless`
# (capture saving) under `valgrind --tool=callgrind` on CPU 0. After WARM requests the counters are
# zeroed (callgrind_control --zero), N requests are made with `oha -c C`, and the counts since then
# are dumped: user-space instructions of all of capscope's threads (the kernel's are not counted).
# Valgrind runs capscope some 50 times slower, so keep N small; the count per request hardly
# depends on it.
#
# usage: benches/latency/instructions.sh BIN [N]       (default N: 2000)
#   C=1 (connections, default 1)   P=/small (the body, default; /1m for 1 MiB)   WARM=300
# Needs valgrind, the shared bench's fixtures (../shared/bench/setup.sh) and the bench lock:
#   flock /tmp/bench.lock benches/latency/instructions.sh target/release/capscope 2000
set -euo pipefail
REAL=$(realpath "${1:?capscope binary}"); N=${2:-2000}; CONC=${C:-1}; WARM=${WARM:-300}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null \
  || { echo "needs valgrind (callgrind, callgrind_control)" >&2; exit 1; }
. "$(dirname "$0")/layout.sh"
layout_init instructions
# start_capscope runs "$BIN run ..." and "$BIN ca export": a wrapper puts only the first under valgrind.
cat > $T/capscope <<EOW
#!/usr/bin/env bash
if [ "\$1" = run ]; then
  exec valgrind --tool=callgrind --callgrind-out-file=$T/callgrind.out.%p -q "$REAL" "\$@"
fi
exec "$REAL" "\$@"
EOW
chmod +x $T/capscope
start_nginx
start_capscope $T/capscope
ARGS=("${CAPSCOPE_ARGS[@]}" https://127.0.0.1:$SP${P:-/small})
OHA=(taskset -c 1 oha --no-tui --worker-threads 1 -c $CONC)
"${OHA[@]}" -n $WARM "${ARGS[@]}" > /dev/null
callgrind_control --zero $CPID > /dev/null 2>&1
"${OHA[@]}" -n $N "${ARGS[@]}" > /dev/null
callgrind_control --dump=measured $CPID > /dev/null 2>&1
DUMP=$(ls -t $T/callgrind.out.* | head -1)
IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$DUMP")
echo "$(basename "$REAL"): $N requests at c=$CONC (${P:-/small}): $IR instructions, $((IR / N)) per request"
