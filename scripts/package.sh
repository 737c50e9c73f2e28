#!/usr/bin/env bash
# Package the five Lambda functions for arm64 (Graviton, provided.al2023):
#
#   target/lambda-arm64/<binary>/bootstrap.zip
#   for <binary> in ecs-events alarm-responder pipeline-events scheduled-reports runbook deployment-hook
#
# Each zip holds one executable named `bootstrap`, built in release mode for
# aarch64-unknown-linux-gnu (glibc as in Amazon Linux 2023). This is what
# `sam build` does through the rust-cargolambda build method in
# infra/template.yaml; use this script when you upload code yourself or want
# the artifacts in CI.
#
# Tools (installed on first use, from PyPI and rustup only):
#   .venv-lambda   cargo-lambda (PyPI wheel; brings Zig, used as the cross linker)
#   rustup target  aarch64-unknown-linux-gnu
#
# Usage:
#   scripts/package.sh               build the five zips
#   scripts/package.sh --tools-only  only install/check the tools
#
# A clean release build of the workspace (LTO, one codegen unit) takes several
# minutes on two cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BINARIES=(ecs-events alarm-responder pipeline-events scheduled-reports runbook deployment-hook)
TARGET=aarch64-unknown-linux-gnu
LAMBDA_DIR=target/lambda-arm64
VENV=.venv-lambda
CARGO_LAMBDA_REQ="cargo-lambda>=1.9,<2"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

tools_only=false
case "${1:-}" in
  --tools-only) tools_only=true ;;
  "") ;;
  *) echo "usage: $0 [--tools-only]" >&2; exit 2 ;;
esac

if [[ ! -x "$VENV/bin/cargo-lambda" ]] || ! cmp -s <(echo "$CARGO_LAMBDA_REQ") "$VENV/.requirements.txt"; then
  echo "==> installing $CARGO_LAMBDA_REQ into $VENV"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "$CARGO_LAMBDA_REQ"
  echo "$CARGO_LAMBDA_REQ" >"$VENV/.requirements.txt"
fi
# `cargo lambda` resolves to the cargo-lambda executable on PATH; the venv's
# python also provides the ziglang module cargo-lambda links with.
export PATH="$ROOT/$VENV/bin:$PATH"

if ! rustup target list --installed | grep -qx "$TARGET"; then
  echo "==> rustup target add $TARGET"
  rustup target add "$TARGET"
fi

echo "==> $(cargo lambda --version)"
if $tools_only; then
  exit 0
fi

bin_args=()
for b in "${BINARIES[@]}"; do bin_args+=(--bin "$b"); done

echo "==> cargo lambda build --release --arm64 (${BINARIES[*]})"
cargo lambda build --release --arm64 --output-format zip --lambda-dir "$LAMBDA_DIR" "${bin_args[@]}"

for b in "${BINARIES[@]}"; do
  zip="$LAMBDA_DIR/$b/bootstrap.zip"
  [[ -f "$zip" ]] || { echo "missing $zip" >&2; exit 1; }
  printf '%-20s %8d bytes  %s\n' "$b" "$(stat -c %s "$zip")" "$zip"
done
