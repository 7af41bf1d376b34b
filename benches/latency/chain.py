"""Follows each request of a one-connection run through a system-wide perf trace (sched_wakeup,
sched_switch, raw_syscalls) and prints the median time of every step, from oha's send of the request
to oha's receive of the response, and the proxy's syscalls and context switches per request.

usage: chain.py TRACE.data capscope|relay|direct   (benches/latency/trace.sh runs it)
"""
import collections
import re
import subprocess
import sys

READS, WRITES = (0, 45), (1, 20, 44)  # read, recvfrom; write, writev, sendto
# The proxy's threads that forward: tokio's workers, or the main thread when it runs the runtime.
PROXY = {"capscope": ("tokio-rt-", "capscope"), "relay": ("relay",)}
NAMES = {0: "read", 1: "write", 20: "writev", 44: "sendto", 45: "recvfrom", 202: "futex",
         232: "epoll_wait", 281: "epoll_pwait", 7: "poll", 23: "select"}


def events(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(.+?)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if m:
            comm, tid, t, event, rest = m.groups()
            yield float(t) * 1e6, comm, int(tid), event, rest


def syscall(rest, exiting):
    m = re.match(r"NR (\d+) = (-?\d+)" if exiting else r"NR (\d+) \((\w+)", rest)
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2)) if exiting else int(m.group(2), 16)


def named(comm, names):
    """Whether a thread name is one of `names` (a tokio worker, or the main thread of a
    current-thread runtime, not the `capscope-log` thread)."""
    return comm in names or any(comm.startswith(n) for n in names if n.endswith("-"))


def switched_to(names):
    def test(c, e, r):
        m = e == "sched:sched_switch" and re.search(r"next_comm=(.+?) next_pid", r)
        return bool(m) and named(m.group(1), names)
    return test


def enter(names, nrs):
    return lambda c, e, r: named(c, names) and e == "raw_syscalls:sys_enter" and syscall(r, False)[0] in nrs


def done(names, nrs):
    def test(c, e, r):
        if not named(c, names) or e != "raw_syscalls:sys_exit":
            return False
        nr, ret = syscall(r, True)
        return nr in nrs and ret is not None and ret > 0
    return test


def steps(mode):
    oha, nginx = ("oha",), ("nginx",)
    first = [("oha sends the request (its writev, waking the next hop)", done(oha, WRITES))]
    last = [("oha's core wakes until oha runs", switched_to(oha)),
            ("oha receives the response", done(oha, READS))]
    if mode == "direct":
        return first + [
            ("nginx's core: wake-up until nginx runs", switched_to(nginx)),
            ("nginx: request read to response write", enter(nginx, WRITES)),
            ("nginx sends the response (wakes oha)", done(nginx, WRITES)),
        ] + last
    proxy = PROXY[mode]
    return first + [
        ("proxy's core: wake-up until the proxy runs", switched_to(proxy)),
        ("proxy: back from epoll_wait, reads the request", done(proxy, READS)),
        ("proxy user space, request (TLS, HTTP, hook, record, pool)", enter(proxy, WRITES)),
        ("proxy sends it to the origin (writev, wakes nginx)", done(proxy, WRITES)),
        ("nginx's core: wake-up until nginx runs", switched_to(nginx)),
        ("nginx: request read to response write", enter(nginx, WRITES)),
        ("nginx sends the response (wakes the proxy)", done(nginx, WRITES)),
        ("proxy's core: wake-up until the proxy runs", switched_to(proxy)),
        ("proxy: back from epoll_wait, reads the response", done(proxy, READS)),
        ("proxy user space, response (TLS, HTTP, record)", enter(proxy, WRITES)),
        ("proxy sends it to the client (writev, wakes oha)", done(proxy, WRITES)),
    ] + last


def main():
    path, mode = sys.argv[1], sys.argv[2]
    ev = list(events(path))
    plan = steps(mode)
    seg, totals = collections.defaultdict(list), []
    start = enter(("oha",), WRITES)
    i = 0
    while i < len(ev):
        if not start(*ev[i][1:2], *ev[i][3:]):
            i += 1
            continue
        times, j, k = [ev[i][0]], i + 1, 0
        while k < len(plan) and j < len(ev):
            comm, event, rest = ev[j][1], ev[j][3], ev[j][4]
            if start(comm, event, rest):
                break
            if plan[k][1](comm, event, rest):
                times.append(ev[j][0])
                k += 1
            j += 1
        if k == len(plan):
            for s in range(len(plan)):
                seg[s].append(times[s + 1] - times[s])
            totals.append(times[-1] - times[0])
        i = j

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if xs else float("nan")

    print(f"{len(totals)} requests followed from oha's writev to oha's receive (medians, µs):")
    for s, (label, _) in enumerate(plan):
        print(f"  {med(seg[s]):6.1f}  {label}")
    print(f"  {med(totals):6.1f}  total (median of the whole chain)")

    if mode == "direct":
        return
    requests = max(1, sum(1 for t, c, _, e, r in ev if c == "oha" and e == "raw_syscalls:sys_enter"
                          and syscall(r, False)[0] in WRITES))
    calls, switches = collections.Counter(), 0
    for t, comm, tid, event, rest in ev:
        if event == "raw_syscalls:sys_enter" and (comm.startswith(PROXY[mode][0]) or comm.startswith("capscope")):
            nr, _ = syscall(rest, False)
            calls[NAMES.get(nr, f"syscall {nr}")] += 1
        elif event == "sched:sched_switch":
            m = re.search(r"prev_comm=(.+?) prev_pid", rest)
            if m and (m.group(1).startswith(PROXY[mode][0]) or m.group(1).startswith("capscope")):
                switches += 1
    print(f"the proxy's syscalls per request ({requests} requests in the window):")
    for name, n in calls.most_common():
        if n / requests >= 0.01:
            print(f"  {n / requests:5.2f}  {name}")
    print(f"  {switches / requests:5.2f}  context switches (the proxy's threads leaving the CPU)")


if __name__ == "__main__":
    main()
