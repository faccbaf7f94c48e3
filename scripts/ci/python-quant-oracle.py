#!/usr/bin/env python3
"""Compare our reference quantizers and dequantizers with the `gguf` Python package.

gguf-py's NumPy quantizers are written to be bit-exact with ggml's `quantize_row_*_ref`
(Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, BF16, TQ1_0, TQ2_0); its dequantizers cover every block type.
Usage: python-quant-oracle.py PATH_TO_codec_oracle
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

ORACLE = sys.argv[1]
# Optional: a bitnet-gguf binary and an I2_S model for the end-to-end TQ file check.
CLI = sys.argv[2] if len(sys.argv) > 2 else None
MODEL = sys.argv[3] if len(sys.argv) > 3 else None
COLS = 256
RNG = np.random.default_rng(20261122)


def run_oracle(verb, ty, data, tmp):
    src = os.path.join(tmp, "in.bin")
    dst = os.path.join(tmp, "out.bin")
    with open(src, "wb") as f:
        f.write(data)
    subprocess.run([ORACLE, verb, ty, str(COLS), src, dst], check=True)
    with open(dst, "rb") as f:
        return f.read()


def inputs():
    """Named float32 matrices of shape (rows, 256) that exercise rounding corners."""
    cases = {}
    cases["normal"] = RNG.standard_normal((64, COLS), dtype=np.float32)
    cases["normal_small"] = cases["normal"] * np.float32(1e-3)
    cases["normal_large"] = cases["normal"] * np.float32(300.0)
    cases["uniform"] = RNG.uniform(-1, 1, (64, COLS)).astype(np.float32)
    # Values on exact rounding ties for most block types: integers and halves with block maxima
    # of 8, 16, 127 and 2.
    for m in (2.0, 8.0, 16.0, 127.0):
        x = RNG.integers(-2 * int(m), 2 * int(m) + 1, (16, COLS)).astype(np.float32) / np.float32(2.0)
        x[:, ::32] = np.float32(m)
        x[1::2, ::32] = np.float32(-m)
        cases[f"ties_{int(m)}"] = x
    t = RNG.integers(-1, 2, (32, COLS)).astype(np.float32)
    cases["ternary_scaled"] = t * np.float32(0.8347202)
    z = cases["normal"][:16].copy()
    z[0] = 0
    z[1, :32] = 0
    z[2] = np.float32(1e-30)
    z[3, 7] = np.float32(5.0)
    z[3, :7] = 0
    z[4] = np.float32(1.0)
    cases["zeros_and_tiny"] = z
    cases["positive"] = np.abs(cases["normal"][:16])
    cases["negative"] = -np.abs(cases["normal"][:16])
    return cases


QUANTIZE_TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "TQ1_0", "TQ2_0"]

# Byte offsets of the f16 scale fields in one block: random bytes there could be NaN/inf, which
# would only test NaN propagation, so those get finite values.
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "TQ1_0": [52], "TQ2_0": [64],
}
DEQUANTIZE_TYPES = list(F16_FIELDS) + ["BF16", "F16"]


def random_blocks(name, n_rows):
    qt = Q[name]
    block, size = quants.GGML_QUANT_SIZES[qt]
    n_blocks = n_rows * COLS // block
    raw = RNG.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS.get(name, []):
        d = (RNG.standard_normal(n_blocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    if name in ("F16", "BF16"):
        vals = RNG.standard_normal(n_rows * COLS).astype(np.float32)
        raw = vals.astype(np.float16).view(np.uint8) if name == "F16" else \
            (vals.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    return np.ascontiguousarray(raw).reshape(n_rows, -1)


def main():
    failures = 0
    checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in QUANTIZE_TYPES:
            for case, x in inputs().items():
                ours = run_oracle("quantize", name, x.tobytes(), tmp)
                if name == "F16":
                    ref = x.astype(np.float16).tobytes()
                else:
                    ref = quants.quantize(x, Q[name]).tobytes()
                checks += 1
                if ours != ref:
                    failures += 1
                    diff = next(i for i in range(min(len(ours), len(ref))) if ours[i] != ref[i]) \
                        if len(ours) == len(ref) else -1
                    print(f"FAIL quantize {name} {case}: first differing byte {diff} "
                          f"(lengths {len(ours)} vs {len(ref)})")
        for name in DEQUANTIZE_TYPES:
            blocks = random_blocks(name, 32)
            ours = np.frombuffer(run_oracle("dequantize", name, blocks.tobytes(), tmp), dtype=np.float32)
            if name == "F16":
                ref = blocks.view(np.float16).astype(np.float32).reshape(-1)
            else:
                ref = quants.dequantize(blocks, Q[name]).reshape(-1).astype(np.float32)
            checks += 1
            same = (ours.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(ours) & np.isnan(ref))
            if ours.shape != ref.shape or not same.all():
                failures += 1
                bad = int(np.argmin(same)) if ours.shape == ref.shape else -1
                print(f"FAIL dequantize {name}: first mismatch at {bad}: "
                      f"{ours[bad] if bad >= 0 else ''} vs {ref[bad] if bad >= 0 else ''}")
    if CLI and MODEL:
        c, f = check_tq_files()
        checks += c
        failures += f
    print(f"python-quant-oracle: {checks - failures}/{checks} comparisons bit-exact with gguf "
          f"{getattr(sys.modules['gguf'], '__version__', '')}".rstrip())
    return 1 if failures else 0


def i2s_x86_codes(blob, n):
    """Reference decoding of an I2_S x86-layout payload: (codes in -1..1, f32 scale)."""
    packed = np.frombuffer(blob[: n // 4], dtype=np.uint8).reshape(-1, 1, 32)
    shifts = np.array([6, 4, 2, 0], dtype=np.uint8).reshape(1, 4, 1)
    codes = ((packed >> shifts) & 3).reshape(-1).astype(np.int8) - 1
    scale = np.frombuffer(blob[n // 4: n // 4 + 4], dtype="<f4")[0]
    return codes, scale


def check_tq_files():
    """`bitnet-gguf quantize` I2_S -> TQ1_0/TQ2_0: gguf's own reader must accept the file
    (upstream type ids, sizes, offsets), see architecture `bitnet` with `hidden_act`, and
    dequantize every ternary tensor to code * f16(scale) of the I2_S original."""
    from gguf import GGUFReader

    src = GGUFReader_raw(MODEL)
    checks = failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for ty, ftype in (("tq1_0", 36), ("tq2_0", 37)):
            out = os.path.join(tmp, f"{ty}.gguf")
            subprocess.run([CLI, "quantize", MODEL, out, "--type", ty], check=True,
                           stderr=subprocess.DEVNULL)
            r = GGUFReader(out)
            field = lambda k: r.fields[k].contents()
            ok = field("general.architecture") == "bitnet" and field("general.file_type") == ftype \
                and field("bitnet.hidden_act") == "relu2"
            n_tq = 0
            for t in r.tensors:
                if t.tensor_type.name != ty.upper():
                    continue
                n_tq += 1
                n = int(np.prod(t.shape))
                codes, scale = i2s_x86_codes(src[t.name], n)
                expected = codes.astype(np.float32) * np.float32(np.float16(scale))
                got = quants.dequantize(t.data, t.tensor_type).reshape(-1)
                ok &= np.array_equal(got, expected)
            checks += 1
            if not ok or n_tq == 0:
                failures += 1
                print(f"FAIL end-to-end {ty}: {n_tq} tensors")
    return checks, failures


def GGUFReader_raw(path):
    """Tensor payloads of a GGUF by name, read without interpreting type ids (I2_S is 36, which
    gguf-py does not know)."""
    import struct

    data = open(path, "rb").read()
    pos = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16
    alignment = 32

    def string(p):
        (length,) = struct.unpack_from("<Q", data, p)
        return data[p + 8: p + 8 + length].decode(), p + 8 + length

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(p, vt):
        if vt == 8:
            return string(p)[1]
        if vt == 9:
            et, count = struct.unpack_from("<IQ", data, p)
            p += 12
            for _ in range(count):
                p = skip(p, et)
            return p
        return p + sizes[vt]

    for _ in range(n_kv):
        key, pos = string(pos)
        (vt,) = struct.unpack_from("<I", data, pos)
        if key == "general.alignment":
            (alignment,) = struct.unpack_from("<I", data, pos + 4)
        pos = skip(pos + 4, vt)
    infos = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (nd,) = struct.unpack_from("<I", data, pos)
        pos += 4
        ne = struct.unpack_from(f"<{nd}Q", data, pos)
        pos += 8 * nd
        ty, off = struct.unpack_from("<IQ", data, pos)
        pos += 12
        infos.append((name, ne, ty, off))
    start = (pos + alignment - 1) // alignment * alignment
    out = {}
    for name, ne, ty, off in infos:
        if ty == 36:
            n = int(np.prod(ne))
            out[name] = data[start + off: start + off + n // 4 + 32]
    return out


if __name__ == "__main__":
    sys.exit(main())
