#!/usr/bin/env bash
# Clippy on every target of the workspace, for x86-64 and for aarch64 (whose NEON kernels
# the host build never compiles), with warnings as errors and the limits in clippy.toml.
# Both runs use the default target directory and profile, so the build scripts and proc
# macros the tests built are reused.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "-- clippy: $(rustc -vV | sed -n 's/^host: //p')"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "-- clippy: aarch64-unknown-linux-gnu"
cargo clippy --workspace --all-targets --locked --target aarch64-unknown-linux-gnu -- -D warnings
