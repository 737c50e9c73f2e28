#!/usr/bin/env bash
# Measures the release-profile choice: builds ecs-events under alternative
# profiles (each in its own target dir, so the main build is untouched) and
# prints size, cold start and peak RSS for each. Slow: a full release build
# per variant (~10 min each on 2 cores).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
cd "$ROOT"
declare -A VARIANTS=(
  [current]=""
  [opt3-nolto]="--config profile.release.opt-level=3 --config profile.release.lto=false --config profile.release.codegen-units=16 --config profile.release.strip=false"
  [optz-unwind]="--config profile.release.panic=\"unwind\""
  [opts-abort]="--config profile.release.opt-level=\"s\""
)
cargo build --quiet -p autopilot-tests --bin bench
start_moto
for name in "${!VARIANTS[@]}"; do
  dir="$ROOT/target/profile-$name"
  [ "$name" = current ] && dir="${CARGO_TARGET_DIR:-$ROOT/target}"
  echo "==> $name"
  # shellcheck disable=SC2086
  CARGO_TARGET_DIR="$dir" cargo build --release --quiet -p ecs-events ${VARIANTS[$name]}
  BENCH_COLD_ONLY=1 AUTOPILOT_BIN_DIR="$dir/release" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/bench"
done
