#!/usr/bin/env bash
# Our F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/TQ1_0/TQ2_0 quantizers and every block dequantizer,
# compared byte for byte with the pip `gguf` package's NumPy implementations (which follow
# ggml's reference code) on random and tie-breaking data; then `bitnet-gguf quantize` turns the
# tiny I2_S model into TQ1_0/TQ2_0 files that gguf's own reader must load and dequantize to the
# original codes times the f16-rounded scale.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import gguf, numpy' 2>/dev/null || python3 -m pip install -q gguf numpy

# Path of a freshly built executable: artifact_path <cargo build args...> -- <target name>
artifact_path() {
  local name="${*: -1}"
  cargo build -q --locked --profile test "${@:1:$#-2}" --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$name"
}

exe=$(artifact_path -p bitnet-formats --example codec_oracle -- codec_oracle)
model=models/tiny-bitnet-b1.58.gguf
if [ -f "$model" ]; then
  cli=$(artifact_path --bin bitnet-gguf -- bitnet-gguf)
  python3 scripts/ci/python-quant-oracle.py "$exe" "$cli" "$model"
else
  python3 scripts/ci/python-quant-oracle.py "$exe"
fi
