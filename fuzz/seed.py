#!/usr/bin/env python3
"""Seeds the fuzz corpora from the LLSD test vectors: run from the repository root,
then `cargo +nightly fuzz run <target>`."""
import base64, json, os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
vectors = json.load(open(os.path.join(root, "tests/data/llsd/llsd-curated.json")))["vectors"]
for target in ("xml", "binary", "notation", "roundtrip"):
    out = os.path.join(root, "fuzz/corpus", target)
    os.makedirs(out, exist_ok=True)
    for i, case in enumerate(vectors):
        for fmt in ("xml", "binary", "notation"):
            if fmt in case and (target == fmt or target == "roundtrip"):
                with open(os.path.join(out, f"{i}-{fmt}"), "wb") as f:
                    f.write(base64.b64decode(case[fmt]))
