#!/usr/bin/env bash
# Cross-builds the kernels crate for aarch64 and runs its tests under qemu: once with every
# feature qemu's `max` CPU offers (NEON + dotprod), once with dotprod hidden from the
# dispatcher, and once on the portable path. Each run requires (BITNET_REQUIRE_PATHS) the
# paths its emulated CPU model offers, so a path-looping test that skipped one fails. Needs
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user and the aarch64-unknown-linux-gnu
# rust target (scripts/install-test-deps installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max"

# The host's required paths are x86 ones; each run below names the emulated CPU's own.
unset BITNET_REQUIRE_PATHS

# qemu's `max` CPU has FEAT_DotProd.
echo "-- aarch64: NEON + dotprod"
BITNET_REQUIRE_PATHS=neon,neon-dotprod cargo test -p bitnet-kernels --target aarch64-unknown-linux-gnu --locked

# The dispatcher skips dotprod, but the tests still check its table: the CPU has it.
echo "-- aarch64: NEON without dotprod"
BITNET_REQUIRE_PATHS=neon,neon-dotprod BITNET_DISABLE_DOTPROD=1 cargo test -p bitnet-kernels --target aarch64-unknown-linux-gnu --locked
# qemu 7 has no `dotprod=off` property: a Cortex-A57 (ARMv8.0) is a CPU without it.
echo "-- aarch64: qemu CPU without dotprod (cortex-a57)"
BITNET_REQUIRE_PATHS=neon \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a57" \
  cargo test -p bitnet-kernels --target aarch64-unknown-linux-gnu --locked \
    --test simd_vs_portable --test prefill_vs_portable --test paths

echo "-- aarch64: portable path forced"
BITNET_FORCE_SCALAR=1 cargo test -p bitnet-kernels --target aarch64-unknown-linux-gnu --locked --test golden
