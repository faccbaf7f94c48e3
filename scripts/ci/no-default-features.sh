#!/usr/bin/env bash
# The library without default features is the engine alone: it must build, and the HTTP
# server's runtime (axum, tokio and their companion crates) must not be among its
# dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The test profile reuses every dependency `cargo test` built (the dev profile would
# compile them again); it is a plain library build all the same.
cargo build --lib --no-default-features --locked --profile test

deps=$(cargo tree --no-default-features -e normal -p bitnet-gguf --locked --prefix none)
server=$(grep -E '^(axum|tokio)(-[a-z-]+)? v' <<<"$deps" | sort -u || true)
if [ -n "$server" ]; then
  echo "bitnet-gguf without default features depends on the server runtime:" >&2
  echo "$server" >&2
  exit 1
fi
echo "bitnet-gguf --no-default-features: builds, no axum or tokio"
