#!/usr/bin/env bash
# `capscope run` with the terminal UI open, under load: what the proxy forwards with the UI attached,
# whether the UI keeps up (the header's "lost (UI behind)"), how long a key takes to show on
# screen, and what the UI thread and the process cost. The UI runs in a detached tmux session
# (120x40); the capture is saved as a user's would be (into a scratch CAPSCOPE_HOME, deleted after).
#
# Set-up and pinning as in shared/bench/proxy-bench.sh (run its setup.sh first: nginx, oha and the
# origin's fixtures in /tmp/capscope-bench): capscope alone on CPU 0, oha and nginx on CPU 1.
#
# usage: benches/ui-load.sh [--duration S] [--body small|1m] [--conns N] [--headless] [--keys N]
#   --headless: the same run without the UI (the line log to /dev/null), to compare throughput.
#   env CAPSCOPE_BIN (default target/release/capscope).
# Prints one line of figures (and leaves the raw files in the temp dir it names).
set -euo pipefail
F=/tmp/capscope-bench
DUR=10; BODY=small; CONNS=16; UI=1; KEYS=8
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DUR=$2; shift 2;; --body) BODY=$2; shift 2;; --conns) CONNS=$2; shift 2;;
    --headless) UI=0; shift;; --keys) KEYS=$2; shift 2;;
    *) echo "usage: $0 [--duration S] [--body small|1m] [--conns N] [--headless] [--keys N]" >&2; exit 2;;
  esac
done
[ -s $F/leaf.pem ] && command -v oha >/dev/null && command -v nginx >/dev/null && command -v tmux >/dev/null \
  || { echo "run shared/bench/setup.sh first (nginx, oha, fixtures in $F); tmux is needed too" >&2; exit 1; }
BIN=${CAPSCOPE_BIN:-$PWD/target/release/capscope}
T=$(mktemp -d /tmp/ui-load.XXXX)
S=capscope-ui-load-$$
pids=()
cleanup() {
  tmux kill-session -t $S 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T/home"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
ticks() { sed 's/.*) //' "$1" | awk '{print $12 + $13}'; }   # utime + stime of /proc/.../stat
ms() { echo $(( $(date +%s%N) / 1000000 )); }
TCK=$(getconf CLK_TCK)

# --- origin: nginx, one worker, on CPU 1 (as the shared bench) ---
SP=$(free_port); mkdir -p $T/nginx
cat > $T/nginx.conf <<NGINX
daemon off; worker_processes 1; pid $T/nginx.pid; error_log $T/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; keepalive_timeout 120s; keepalive_requests 100000000;
  client_body_temp_path $T/nginx; proxy_temp_path $T/nginx; fastcgi_temp_path $T/nginx;
  uwsgi_temp_path $T/nginx; scgi_temp_path $T/nginx; default_type application/octet-stream;
  server { listen 127.0.0.1:$SP ssl; root $F/www; ssl_certificate $F/leaf.pem; ssl_certificate_key $F/leaf.key; }
}
NGINX
taskset -c 1 nginx -c $T/nginx.conf -e $T/nginx.err & pids+=($!)
wait_port $SP || { echo "nginx did not start"; cat $T/nginx.err; exit 1; }

# --- capscope on CPU 0: the UI in tmux, or headless ---
CP=$(free_port); mkdir -p $T/home
ARGS="run --listen 127.0.0.1:$CP --upstream-ca $F/ca.pem --ca-dir $T/ca"
# Headless runs in tmux as well (its line log to /dev/null), so both share one environment: a
# process tmux starts is in a session (and a scheduler autogroup) of its own.
if [ $UI = 1 ]; then OUT=""; else OUT="--headless >/dev/null"; fi
tmux new-session -d -s $S -x 120 -y 40 \
  "CAPSCOPE_HOME=$T/home exec taskset -c 0 $BIN $ARGS $OUT 2>$T/capscope.err"
wait_port $CP || { echo "capscope did not start"; cat $T/capscope.err; exit 1; }
PID=$(tmux display -p -t $S '#{pane_pid}')
$BIN ca export --ca-dir $T/ca > $T/ca.pem
curl -sS --max-time 20 -x http://127.0.0.1:$CP --cacert $T/ca.pem -o /dev/null https://127.0.0.1:$SP/$BODY
UI_TID=""
for t in /proc/$PID/task/*; do [ "$(cat $t/comm)" = capscope-ui ] && UI_TID=${t##*/}; done
[ $UI = 0 ] || [ -n "$UI_TID" ] || { echo "no capscope-ui thread in $PID"; exit 1; }

screen() { tmux capture-pane -p -t $S; }
# One key round trip: `?` until the help is on screen, then Esc until it is gone. Prints ms for `?`
# (tmux's own round trips included), or "lost" after 20 s.
help_shown() { [[ "$(screen)" == *'keys (↑'* ]]; }
key_ms() {
  local t0 t1
  t0=$(ms); tmux send-keys -t $S '?'
  until help_shown; do [ $(( $(ms) - t0 )) -lt 20000 ] || { echo lost; return; }; done
  t1=$(ms)
  tmux send-keys -t $S Escape
  while help_shown; do [ $(( $(ms) - t1 )) -lt 20000 ] || break; done
  echo $((t1 - t0))
}

echo 5 > /proc/$PID/clear_refs
c0=$(ticks /proc/$PID/stat); u0=0; [ -z "$UI_TID" ] || u0=$(ticks /proc/$PID/task/$UI_TID/stat)
timeout $((DUR + 60)) taskset -c 1 oha --no-tui --output-format json -o $T/oha.json --worker-threads 1 \
  -z ${DUR}s -c $CONNS -x http://127.0.0.1:$CP --cacert $T/ca.pem https://127.0.0.1:$SP/$BODY \
  > /dev/null 2>$T/oha.err & OHA=$!
lat=""
if [ $UI = 1 ]; then
  sleep 2   # past the start, into the steady state
  for _ in $(seq 1 $KEYS); do lat="$lat $(key_ms)"; sleep 0.3; done
fi
wait $OHA || echo "oha: $(head -c 300 $T/oha.err)" >&2
c1=$(ticks /proc/$PID/stat); u1=0; [ -z "$UI_TID" ] || u1=$(ticks /proc/$PID/task/$UI_TID/stat)
hwm=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
rps=$(python3 -c "import json; d=json.load(open('$T/oha.json')); print(round(d['summary']['requestsPerSec']))")
sent=$(python3 -c "import json; d=json.load(open('$T/oha.json')); print(sum(d['statusCodeDistribution'].values()))")
if [ $UI = 1 ]; then
  sleep 1; screen > $T/screen.txt
  behind=$(grep -o '[0-9,]* lost (UI behind)' $T/screen.txt || echo "none lost (UI behind)")
  shown=$(sed -n 2p $T/screen.txt | grep -o '^[0-9,]* records' || true)
  sorted=$(tr ' ' '\n' <<< "$lat" | sed '/^$/d' | sort -n | tr '\n' ' ')
  tmux send-keys -t $S q
  for _ in $(seq 1 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  echo "ui: $rps req/s ($sent answered, $shown in the UI, $behind); key '?' to screen ms: $sorted;" \
       "cpu: process $(awk -v a=$c0 -v b=$c1 -v t=$TCK -v d=$DUR 'BEGIN{printf "%.0f%%", 100*(b-a)/t/d}')," \
       "UI thread $(awk -v a=$u0 -v b=$u1 -v t=$TCK -v d=$DUR 'BEGIN{printf "%.0f%%", 100*(b-a)/t/d}') of a core;" \
       "peak RSS $((hwm / 1024)) MiB  (raw: $T)"
else
  tmux send-keys -t $S C-c
  for _ in $(seq 1 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  echo "headless: $rps req/s ($sent answered); cpu: process $(awk -v a=$c0 -v b=$c1 -v t=$TCK -v d=$DUR 'BEGIN{printf "%.0f%%", 100*(b-a)/t/d}') of a core; peak RSS $((hwm / 1024)) MiB  (raw: $T)"
fi
