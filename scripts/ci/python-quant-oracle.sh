#!/usr/bin/env bash
# Our F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/TQ1_0/TQ2_0 quantizers and every block dequantizer,
# compared byte for byte with the pip `gguf` package's NumPy implementations (which follow
# ggml's reference code) on random and tie-breaking data.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import gguf, numpy' 2>/dev/null || python3 -m pip install -q gguf numpy

exe=$(cargo build -q -p bitnet-formats --example codec_oracle --message-format=json \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "codec_oracle":
        print(m["executable"])')
python3 scripts/ci/python-quant-oracle.py "$exe"
