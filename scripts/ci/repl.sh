#!/usr/bin/env bash
# The interactive chat at a real terminal (a pty driven by pexpect): Ctrl-C during an endless
# reply keeps the session, `/set parameter temperature 0` makes replies greedy (equal to
# `run`'s), `"""` sends several lines as one message, and `/save` writes a store model that
# `run` continues. The committed tiny model, in a temporary store.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import pexpect' 2>/dev/null || python3 -m pip install -q pexpect

# The test profile (opt-level 2) shares its build with `cargo test`.
cargo build --locked --profile test --bin bitnet-gguf
BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/bitnet-gguf"
case "${CARGO_TARGET_DIR:-}" in /*) BIN="$CARGO_TARGET_DIR/debug/bitnet-gguf" ;; esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export BITNET_MODELS="$WORK/models" HOME="$WORK/home"
unset OLLAMA_MODELS
cp models/tiny-bitnet-b1.58.gguf "$WORK/tiny.gguf"
cat > "$WORK/Modelfile" <<'MF'
FROM ./tiny.gguf
SYSTEM """You are a helpful assistant."""
MF
"$BIN" create tiny -f "$WORK/Modelfile" >/dev/null
python3 scripts/ci/repl_pty.py "$BIN"
