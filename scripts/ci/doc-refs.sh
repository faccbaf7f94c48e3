#!/usr/bin/env bash
# Every documentation reference in code and docs names a file and heading that exist.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 scripts/check-doc-refs
echo "doc references: all resolve"
