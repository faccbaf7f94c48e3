#!/usr/bin/env bash
# Files written by our GGUF writer must read back identically in the Python `gguf` package
# (ggml-org's gguf-py, GGUFReader): same keys, values, key order and tensor infos.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c "import gguf" 2>/dev/null; then
  echo "python gguf package missing (pip install gguf numpy)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cargo run --quiet --locked -p bitnet-formats --example write_interop_fixture -- "$tmp/interop.gguf" "$tmp/interop.json"
python3 scripts/ci/python_gguf_interop.py "$tmp/interop.gguf" "$tmp/interop.json"
