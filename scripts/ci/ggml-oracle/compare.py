#!/usr/bin/env python3
"""Our quantizers vs ggml's C reference quantizers on random and corner-case data.
Usage: compare.py CODEC_ORACLE GGML_HARNESS"""
import os
import subprocess
import sys
import tempfile

import numpy as np

ours_exe, ggml_exe = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
cases = {
    "normal": rng.standard_normal((64, 256), dtype=np.float32),
    "small": rng.standard_normal((16, 256), dtype=np.float32) * np.float32(1e-3),
    "large": rng.standard_normal((16, 256), dtype=np.float32) * np.float32(300),
    "uniform": rng.uniform(-1, 1, (32, 256)).astype(np.float32),
    "ties": rng.integers(-16, 17, (16, 256)).astype(np.float32) / np.float32(2),
    "ternary": rng.integers(-1, 2, (16, 256)).astype(np.float32) * np.float32(0.8347202),
    "heavy_tailed": rng.standard_t(2, (32, 256)).astype(np.float32),
}
z = cases["normal"][:8].copy()
z[0] = 0
z[1, :16] = 0
z[2] = np.float32(1e-30)
z[3] = 1
cases["zeros_and_tiny"] = z

failures = total = 0
with tempfile.TemporaryDirectory() as tmp:
    src, a_path, b_path = (os.path.join(tmp, n) for n in ("in.f32", "ours.bin", "ggml.bin"))
    for ty in ["Q6_K", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "TQ1_0", "TQ2_0", "Q2_0", "Q1_0"]:
        for name, x in cases.items():
            x.tofile(src)
            subprocess.run([ours_exe, "quantize", ty, "256", src, a_path], check=True)
            subprocess.run([ggml_exe, ty, src, b_path], check=True)
            a, b = open(a_path, "rb").read(), open(b_path, "rb").read()
            total += 1
            if a != b:
                failures += 1
                i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), -1)
                print(f"FAIL {ty} {name}: first differing byte {i} (lengths {len(a)} vs {len(b)})")
print(f"ggml-c-oracle: {total - failures}/{total} quantizations bit-exact with ggml's C reference")
sys.exit(1 if failures else 0)
