"""Reads a GGUF written by bitnet-gguf's writer with the Python `gguf` package (GGUFReader)
and checks every key, value and tensor info against the writer's own description."""

import json
import math
import sys

from gguf import GGUFReader


def same(expected, actual):
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(expected), float(actual), rel_tol=1e-6, abs_tol=0.0)
    if isinstance(expected, list):
        return len(expected) == len(actual) and all(same(e, a) for e, a in zip(expected, actual))
    return expected == actual


def main(gguf_path, json_path):
    want = json.load(open(json_path, encoding="utf-8"))
    reader = GGUFReader(gguf_path)
    problems = []
    fields = {k: v for k, v in reader.fields.items() if not k.startswith("GGUF.")}
    if reader.fields["GGUF.version"].contents() != want["version"]:
        problems.append("version differs")
    if sorted(fields) != sorted(want["metadata"]):
        problems.append(f"keys differ: {sorted(fields)} vs {sorted(want['metadata'])}")
    # Key order is part of the file: it must match too.
    if list(fields) != list(want["metadata"]):
        problems.append("key order differs")
    for key, spec in want["metadata"].items():
        field = fields.get(key)
        if field is None:
            continue
        if int(field.types[0]) != spec["type"]:
            problems.append(f"{key}: type {int(field.types[0])} != {spec['type']}")
        if spec["element_type"] is not None and (len(field.types) < 2 or int(field.types[1]) != spec["element_type"]):
            # gguf-py records no element type for empty arrays it reads.
            if spec["value"]:
                problems.append(f"{key}: element type differs")
        got = field.contents()
        if not same(spec["value"], got):
            problems.append(f"{key}: {got!r} != {spec['value']!r}")
    if len(reader.tensors) != len(want["tensors"]):
        problems.append(f"tensor count {len(reader.tensors)} != {len(want['tensors'])}")
    for t, spec in zip(reader.tensors, want["tensors"]):
        got = {
            "name": t.name,
            "shape": [int(d) for d in t.shape],
            "type": int(t.tensor_type),
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
            "sum": int(t.data.view("uint8").astype("uint64").sum()),
        }
        for k, v in got.items():
            if v != spec[k]:
                problems.append(f"tensor {spec['name']}: {k} {v!r} != {spec[k]!r}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"gguf-py agrees: {len(fields)} keys, {len(reader.tensors)} tensors")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
