#!/usr/bin/env bash
# The demo: a real incident replayed against a local AWS server (moto), through
# the real Lambda binaries. Needs only python3 and cargo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
cd "$ROOT"
echo "==> building the functions"
cargo build --workspace --bins --quiet
start_moto
AUTOPILOT_BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug" cargo run --quiet -p autopilot-tests --bin demo
