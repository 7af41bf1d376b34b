#!/usr/bin/env python3
"""What a capture's `write` of large bodies costs this machine's kernel: CPU time per MiB of 1 MiB
`write`s into a new file (the copy into the page cache, as the capture writer makes it for every kept
body), from a buffer still in the processor's cache (BUFFERS=1) or from one of BUFFERS different
1 MiB buffers in turn (64: far more than the last-level cache, as a tap's copy is once four
connections have streamed past it). The file is deleted afterwards.

usage: taskset -c 0 python3 benches/latency/pagecache.py DIR [BUFFERS] [MIB]
  DIR       where the file goes: the capture's file system (/tmp on disk, /dev/shm in RAM)
  BUFFERS   1 or 64 (default 64); MIB: how much to write (default 2000)

Run it alternately with BUFFERS=1 and 64, on the core capscope would use, with nothing else running:
    for i in 1 2 3; do for n in 1 64; do taskset -c 0 python3 benches/latency/pagecache.py /tmp $n; done; done
"""
import os
import sys
import tempfile
import time


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    where = sys.argv[1]
    nbuf = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    buffers = [os.urandom(1 << 20) for _ in range(nbuf)]
    fd, path = tempfile.mkstemp(prefix="pagecache-", dir=where)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(mib):
            os.write(fd, buffers[i % nbuf])
        cpu1, wall1 = time.process_time(), time.perf_counter()
    finally:
        os.close(fd)
        os.unlink(path)
    print(f"{where}: {mib} MiB from {nbuf} buffer(s): {(cpu1 - cpu0) * 1000 / mib:.3f} ms of CPU "
          f"per MiB, {(wall1 - wall0) * 1000 / mib:.3f} ms wall")


if __name__ == "__main__":
    main()
