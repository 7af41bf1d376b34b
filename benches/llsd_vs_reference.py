#!/usr/bin/env python3
"""Whole-process LLSD decoding: `capscope decode FILE --to binary` against Linden Lab's `llsd` package.

Builds a FetchInventoryDescendents2 response with 50,000 items (500 folders of 100, the shape of
benches/llsd.rs) in XML, binary and notation with the reference implementation, then times, for each
format, the whole process that reads the file, decodes it and writes it as binary LLSD (or as
`--to xml` / `--to notation`; `--to pretty` and `--to typed-json` time capscope alone, the reference
having no such output):

    capscope decode FILE --to binary > /dev/null
    python3 -c 'llsd.format_binary(llsd.parse(open(FILE,"rb").read()))'

Each side is run REPEAT times; the figure kept is the best CPU time (user + sys) of a run, which is
steadier than wall time on a busy machine. Needs `pip install llsd==1.2.4` and a release build.

Run: python3 benches/llsd_vs_reference.py [--capscope target/release/capscope] [--repeat 5] [--items 50000]
                                          [--to binary|xml|notation|pretty|typed-json]
                                          [--baseline OLDER_CAPSCOPE]
"""

import argparse
import datetime
import os
import resource
import subprocess
import sys
import tempfile
import uuid

import llsd

PY_DECODE = (
    "import llsd,sys\n"
    "data=open(sys.argv[1],'rb').read()\n"
    "out=getattr(llsd,'format_'+sys.argv[2])(llsd.parse(data))\n"
    "sys.stdout.buffer.write(out)\n"
)


def uid(kind, n):
    x = (kind * 0x9E3779B97F4A7C15 + n * 0xD1B54A32D192ED03) % (1 << 64)
    hi = x ^ 0x5A5A123400004000
    lo = (((x << 17) | (x >> 47)) % (1 << 64)) | 0x8000000000000000
    return uuid.UUID(int=(hi << 64) | lo)


def item(folder, n, agent):
    k = folder * 1000 + n
    return {
        "item_id": uid(1, k),
        "asset_id": uid(2, k),
        "parent_id": uid(3, folder),
        "name": f"Object {k} \u2014 Spring Collection (copy)",
        "desc": f"2026-03-{n % 28 + 1:02} 14:{n % 60:02}:{k % 60:02} created by the upload wizard",
        "type": 6 if n % 3 == 0 else 0,
        "inv_type": 6 if n % 3 == 0 else 0,
        "flags": ((k * 2654435) % (1 << 32)) & 0x00FFFFFF,
        "created_at": datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=1_700_000_000 + k * 3733),
        "sale_info": {"sale_price": k % 500, "sale_type": k % 4},
        "permissions": {
            "owner_id": agent,
            "group_id": uid(4, folder % 7),
            "creator_id": uid(5, k % 97),
            "last_owner_id": uid(6, k % 89),
            "base_mask": 0x7FFFFFFF,
            "owner_mask": 0x7FFFFFFF,
            "group_mask": 0,
            "everyone_mask": 0,
            "next_owner_mask": 0x00082000,
            "is_owner_group": False,
        },
    }


def inventory(items):
    agent = uid(0, 1)
    per = 100
    folders = []
    for f in range((items + per - 1) // per):
        folders.append({
            "agent_id": agent,
            "owner_id": agent,
            "folder_id": uid(3, f),
            "version": 40 + f,
            "descendents": per + 1,
            "categories": [{
                "category_id": uid(7, f),
                "parent_id": uid(3, f),
                "name": f"Subfolder {f}",
                "type_default": -1,
                "version": 3,
            }],
            "items": [item(f, n, agent) for n in range(per)],
        })
    return {"folders": folders}


def cpu_of(cmd):
    """CPU seconds (user + sys) of one child process run to completion, output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.devnull, "wb") as sink:
        subprocess.run(cmd, stdout=sink, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capscope", default="target/release/capscope")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--to", choices=["binary", "xml", "notation", "pretty", "typed-json"],
                    default="binary",
                    help="the format both sides write (default binary); the reference has no "
                         "pretty or typed-json output, so those time capscope only")
    ap.add_argument("--baseline", metavar="CAPSCOPE",
                    help="another capscope binary (an older build) timed in the same run")
    args = ap.parse_args()
    value = inventory(args.items)
    encoders = {
        "xml": llsd.format_xml,
        "binary": llsd.format_binary,
        "notation": llsd.format_notation,
    }
    print(f"llsd {getattr(llsd, '__version__', '?')}, {args.items} items, to {args.to}, "
          f"best of {args.repeat} (CPU s)")
    base_head = f" {'baseline':>9} {'speed-up':>8}" if args.baseline else ""
    print(f"{'format':9} {'size':>9} {'reference':>10} {'capscope':>9} {'ratio':>7} {'capscope MB/s':>14}"
          + base_head)
    with tempfile.TemporaryDirectory() as tmp:
        for name, encode in encoders.items():
            path = os.path.join(tmp, f"inventory.{name}")
            data = encode(value)
            with open(path, "wb") as f:
                f.write(data)
            ref = None
            if args.to in encoders:
                ref = min(cpu_of([sys.executable, "-c", PY_DECODE, path, args.to])
                          for _ in range(args.repeat))
            ours = min(cpu_of([args.capscope, "decode", path, "--to", args.to]) for _ in range(args.repeat))
            base = ""
            if args.baseline:
                theirs = min(cpu_of([args.baseline, "decode", path, "--to", args.to])
                             for _ in range(args.repeat))
                base = f" {theirs:8.3f}s {theirs / ours:7.2f}x"
            mb = len(data) / 1e6
            ref_cols = f"{ref:9.3f}s {ours:8.3f}s {ref / ours:6.1f}x" if ref is not None \
                else f"{'-':>10} {ours:8.3f}s {'-':>7}"
            print(f"{name:9} {mb:7.1f}MB {ref_cols} {mb / ours:13.0f}" + base)


if __name__ == "__main__":
    main()
