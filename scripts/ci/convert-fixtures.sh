#!/usr/bin/env bash
# Converts every Hugging Face fixture checkpoint with the CLI, to I2_S (bitnet.cpp dialect) and
# TQ2_0 (upstream dialect), and checks that `inspect` reports no warnings but one: a squared-ReLU
# model (the bundled one) in the upstream dialect must get `upstream-computes-silu`, since
# upstream llama.cpp runs SiLU for `bitnet`; the TQ2_0 files are also read with upstream's
# gguf-py, which must see every tensor with the expected type.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --locked --quiet --profile test --bin bitnet-gguf
bin=target/debug/bitnet-gguf
[ -n "${CARGO_TARGET_DIR:-}" ] && bin="$CARGO_TARGET_DIR/debug/bitnet-gguf"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for dir in models/tiny-bitnet-b1.58 tests/fixtures/hf/hf1bitllm-llama-packed tests/fixtures/hf/1bitllm-bitnet-style; do
  name=$(basename "$dir")
  for type in i2_s tq2_0; do
    file="$out/$name.$type.gguf"
    "$bin" convert "$dir" -o "$file" --type "$type" 2>"$out/log"
    if grep -q '^warning' "$out/log"; then
      cat "$out/log"
      echo "FAIL: $name ($type): converter warnings"
      exit 1
    fi
    "$bin" inspect --json "$file" >"$out/inspect.json"
    python3 - "$out/inspect.json" "$name" "$type" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
warnings = report.get("warnings") or []
name, ty = sys.argv[2], sys.argv[3]
expected = ["upstream-computes-silu"] if (name, ty) == ("tiny-bitnet-b1.58", "tq2_0") else []
codes = [w.get("code") for w in warnings]
if codes != expected:
    sys.exit(f"FAIL: {name} ({ty}): inspect warnings {warnings}, expected {expected}")
print(f"ok: {name} {ty}: {report['architecture']}, warnings {codes}")
PY
  done
  python3 - "$out/$name.tq2_0.gguf" <<'PY'
import sys
from gguf import GGUFReader, GGMLQuantizationType as T
r = GGUFReader(sys.argv[1])
types = {t.name: t.tensor_type for t in r.tensors}
proj = [n for n in types if n.endswith(("attn_q.weight", "ffn_down.weight"))]
assert proj and all(types[n] == T.TQ2_0 for n in proj), types
assert types["token_embd.weight"] == T.F16
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
act = r.fields.get(f"{arch}.hidden_act")
assert arch in ("bitnet", "llama") and act is not None, arch
print(f"ok: gguf-py reads {sys.argv[1].rsplit('/', 1)[-1]} ({len(types)} tensors, arch {arch})")
PY
done
