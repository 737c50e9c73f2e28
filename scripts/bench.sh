#!/usr/bin/env bash
# Benchmark of the release binaries (host architecture) against a local moto:
# binary size, cold start (exec to the first Runtime API `next`), peak RSS,
# AWS calls and handler time per event. Prints Markdown tables.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
cd "$ROOT"
echo "==> cargo build --release (functions)"
cargo build --release --quiet -p ecs-events -p alarm-responder -p pipeline-events -p scheduled-reports -p runbook
cargo build --quiet -p autopilot-tests --bin bench
start_moto
AUTOPILOT_BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/bench"
