#!/usr/bin/env bash
# Our Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, TQ1_0, TQ2_0, Q2_0 and Q1_0 quantizers compared byte for byte with
# ggml's own C reference quantizers (quantize_row_*_ref), compiled from the ggml sources that the
# llama-cpp-python sdist on PyPI vendors. Built without FMA contraction: the portable reference
# (an -march=native build may differ in the last bit of Q6_K's scale search).
set -euo pipefail
cd "$(dirname "$0")/../.."

version=0.3.36
cache="${XDG_CACHE_HOME:-$HOME/.cache}/bitnet-gguf/ggml-oracle"
sdist="$cache/llama_cpp_python-$version.tar.gz"
mkdir -p "$cache"
if [ ! -f "$sdist" ]; then
  # pip prepares the sdist's metadata even for `download`, which needs these two.
  python3 -c 'import scikit_build_core' 2>/dev/null || python3 -m pip install -q scikit-build-core
  command -v cmake >/dev/null || python3 -m pip install -q cmake
  python3 -m pip download -q "llama-cpp-python==$version" --no-deps --no-binary :all: \
    --no-build-isolation -d "$cache"
fi
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$sdist" -C "$work" "llama_cpp_python-$version/vendor/llama.cpp/ggml"
ggml="$work/llama_cpp_python-$version/vendor/llama.cpp/ggml"
cc -O2 -ffp-contract=off -I"$ggml/include" -I"$ggml/src" -I"$ggml/src/ggml-cpu" \
  scripts/ci/ggml-oracle/harness.c scripts/ci/ggml-oracle/stubs.c "$ggml/src/ggml-quants.c" \
  -o "$work/ggml-harness" -lm

exe=$(cargo build -q --locked --profile test -p bitnet-formats --example codec_oracle --message-format=json \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "codec_oracle":
        print(m["executable"])')
python3 scripts/ci/ggml-oracle/compare.py "$exe" "$work/ggml-harness"
