#!/usr/bin/env bash
# Build the deployable stack on a fresh clone, non-interactively:
#
#   scripts/build.sh            then: sam deploy --guided --config-file infra/samconfig.toml
#
# Installs what `sam build` needs into the project (nothing global):
#   .venv-sam      aws-sam-cli (infra/requirements/sam.txt, as check-infra uses)
#   .venv-lambda   cargo-lambda (PyPI wheel; brings Zig, the cross linker)
#   rustup target  aarch64-unknown-linux-gnu
# and runs `sam build` from the repository root with infra/samconfig.toml,
# which opts in to the rust-cargolambda build method (a preview feature in
# older SAM CLI releases; SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 is set too, so no
# release stops at the preview prompt). Result: five arm64 `bootstrap` files
# under .aws-sam/build/<Function>/. `scripts/check-arm64.sh` runs them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv-sam/bin/sam ] || ! cmp -s infra/requirements/sam.txt .venv-sam/.requirements.txt; then
  echo "==> installing aws-sam-cli into .venv-sam"
  "$PYTHON" -m venv .venv-sam
  .venv-sam/bin/pip install --quiet -r infra/requirements/sam.txt
  cp infra/requirements/sam.txt .venv-sam/.requirements.txt
fi
"$ROOT/scripts/package.sh" --tools-only

export PATH="$ROOT/.venv-lambda/bin:$PATH"
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 SAM_CLI_TELEMETRY=0
echo "==> $(.venv-sam/bin/sam --version), $(cargo-lambda lambda --version 2>/dev/null || cargo-lambda --version)"
started=$(date +%s)
.venv-sam/bin/sam build -t infra/template.yaml --config-file "$ROOT/infra/samconfig.toml" </dev/null
echo "==> sam build took $(( $(date +%s) - started )) s; artifacts:"
ls -l .aws-sam/build/*/bootstrap
