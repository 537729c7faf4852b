#!/usr/bin/env python3
"""Checks schema/tests/avro_pairs.json against the Python `avro` package's compatibility checker.

Each pair is (reader, writer, compatible?). The table is what Millrace's Avro module asserts
(schema/tests/avro_compat.rs); this script is an independent oracle for it. A pair on which
Python avro disagrees with the table must carry a "note" saying why the table follows the Avro
specification instead; an unexplained disagreement fails the run.

Usage (a private venv; Python avro is not a dependency of the project):
    python3 -m venv /tmp/avro-venv && /tmp/avro-venv/bin/pip install avro
    /tmp/avro-venv/bin/python schema/tests/avro_oracle.py [path/to/avro_pairs.json]
"""
import json
import os
import sys

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType


def parse(value):
    return avro.schema.parse(json.dumps(value))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "avro_pairs.json")
    with open(path) as f:
        pairs = json.load(f)
    agree = explained = unexplained = 0
    for p in pairs:
        try:
            result = ReaderWriterCompatibilityChecker().get_compatibility(
                parse(p["reader"]), parse(p["writer"])
            )
            oracle = result.compatibility is SchemaCompatibilityType.compatible
            detail = "; ".join(sorted({str(i) for i in result.incompatibilities}))
        except Exception as e:  # a schema Python avro rejects, or a checker failure
            oracle, detail = None, f"{type(e).__name__}: {e}"
        if oracle == p["compatible"]:
            agree += 1
            continue
        if p.get("note"):
            explained += 1
            tag = "explained"
        else:
            unexplained += 1
            tag = "DISAGREES"
        print(f"{tag}: {p['name']}: table says {p['compatible']}, python avro says {oracle} ({detail})")
        if p.get("note"):
            print(f"    note: {p['note']}")
    print(f"{len(pairs)} pairs: {agree} agree, {explained} disagree with a note, {unexplained} disagree without one")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
