#!/usr/bin/env bash
# The official `ollama` and `openai` Python clients against a real `bitnet-gguf serve` on a free
# loopback port, with the committed tiny model imported into a temporary store through a
# Modelfile. Also exercises the CLI verbs that talk to a running server (ps, stop).
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import ollama, openai' 2>/dev/null || python3 -m pip install -q ollama openai

# The test profile (opt-level 2) shares its build with `cargo test`.
cargo build --locked --profile test --bin bitnet-gguf
BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/bitnet-gguf"
case "${CARGO_TARGET_DIR:-}" in /*) BIN="$CARGO_TARGET_DIR/debug/bitnet-gguf" ;; esac
GGUF="$(pwd)/models/tiny-bitnet-b1.58.gguf"

WORK="$(mktemp -d)"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export BITNET_MODELS="$WORK/models"
unset OLLAMA_MODELS OLLAMA_API_KEY
# Relative FROM: resolved against the Modelfile's directory.
cp "$GGUF" "$WORK/tiny.gguf"
cat > "$WORK/Modelfile" <<'MF'
# The committed test model.
FROM ./tiny.gguf
PARAMETER temperature 0.7
PARAMETER top_k 40
SYSTEM """You are a helpful assistant."""
MF
"$BIN" create tiny -f "$WORK/Modelfile" | tee "$WORK/create.out"
grep -qx success "$WORK/create.out"
"$BIN" list | tee "$WORK/list.out"
grep -q '^tiny:latest ' "$WORK/list.out"
"$BIN" show tiny --parameters > "$WORK/params.out"
grep -q '^temperature  *0.7$' "$WORK/params.out"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# /api/pull downloads from a mock Hub that test_clients.py serves on this port; an empty
# Hugging Face cache and no token keep the machine's own out of the test.
HUB_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export HF_ENDPOINT="http://127.0.0.1:$HUB_PORT" HF_HOME="$WORK/hf"
unset HF_TOKEN HF_HUB_CACHE
export OLLAMA_HOST="127.0.0.1:$PORT"
"$BIN" serve --parallel 4 > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://$OLLAMA_HOST/', timeout=1)" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log"; echo "server exited"; exit 1; }
  sleep 0.2
done

status=0
BITNET_URL="http://$OLLAMA_HOST" BITNET_BIN="$BIN" BITNET_GGUF="$GGUF" BITNET_HUB_PORT="$HUB_PORT" \
  timeout 900 python3 tests/python/test_clients.py || status=$?

# CLI verbs against the running server.
"$BIN" ps | tee "$WORK/ps.out"
grep -q '^tiny:latest .*100% CPU' "$WORK/ps.out" || { echo "ps does not list the loaded model"; status=1; }
"$BIN" stop tiny
if "$BIN" stop nothing-loaded 2> "$WORK/stop.err"; then echo "stop of an unknown model succeeded"; status=1; fi
grep -q "couldn't find model" "$WORK/stop.err" || status=1
kill -0 "$PID" 2>/dev/null || { echo "the server died"; status=1; }
if [ "$status" != 0 ]; then
  echo "--- server log"; tail -50 "$WORK/server.log"
fi
exit "$status"
