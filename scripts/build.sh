#!/usr/bin/env bash
# Build the deployable stack on a fresh clone, non-interactively:
#
#   scripts/build.sh            then: sam deploy --guided --config-file infra/samconfig.toml
#
# Installs what `sam build` needs into the project (nothing global):
#   .venv-sam      aws-sam-cli (infra/requirements/sam.txt, as check-infra uses)
#   .venv-lambda   cargo-lambda (PyPI wheel; brings Zig, the cross linker)
#   rustup target  aarch64-unknown-linux-gnu
# and runs `sam build` with infra/samconfig.toml, which opts in to the
# rust-cargolambda build method (a preview feature in older SAM CLI releases;
# SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 is set too, so no release stops at the
# preview prompt). Result: six arm64 `bootstrap` files under
# .aws-sam/build/<Function>/. `scripts/check-arm64.sh` runs them.
#
# SAM builds a clean copy of the tracked tree, not the working tree. The
# template's CodeUri is the workspace root, and with `cached = true` SAM hashes
# every file under it before building each of the six functions
# (samcli/lib/build/build_strategy.py: dir_checksum(code_dir,
# ignore_list=[".aws-sam"]), following symlinks): in a working tree that is
# the multi-GB target/ the demo and the tests leave, and the virtualenvs. So:
#   .aws-sam/src            the tracked files (`git ls-files`, as they are in
#                           the working tree), re-made on every run; SAM's
#                           CodeUri, so its hash covers the source only
#   .aws-sam/cargo-target   cargo's target directory for these builds
#                           (CARGO_TARGET_DIR, outside the copy: never hashed,
#                           kept between runs for incremental builds);
#                           cargo-lambda leaves each bootstrap in its
#                           lambda/<binary>/, and SAM's rust builder collects
#                           it from the target directory `cargo metadata`
#                           reports, which is the same one
# A file git does not track is not built (the script names any it sees).
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

SRC="$ROOT/.aws-sam/src"
copied=$(date +%s)
rm -rf "$SRC"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked files as they are now (uncommitted edits included; deleted ones skipped).
  git -C "$ROOT" ls-files -z --cached \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$SRC"
  untracked="$(git -C "$ROOT" ls-files --others --exclude-standard -- Cargo.toml Cargo.lock shared functions tests infra)"
  if [ -n "$untracked" ]; then
    echo "==> not tracked by git, so not built (git add them to include them):"
    printf '    %s\n' $untracked
  fi
else
  # Not a git checkout (an unpacked archive): everything but the local build directories.
  tar --exclude=./target --exclude='./.venv*' --exclude=./.aws-sam --exclude=./.git -cf - . | tar -xf - -C "$SRC"
fi
export CARGO_TARGET_DIR="$ROOT/.aws-sam/cargo-target"
echo "==> clean copy: $(find "$SRC" -type f | wc -l) files, $(du -sh "$SRC" | cut -f1) in .aws-sam/src ($(( $(date +%s) - copied )) s)"

started=$(date +%s)
.venv-sam/bin/sam build -t "$SRC/infra/template.yaml" --config-file "$ROOT/infra/samconfig.toml" \
  --build-dir "$ROOT/.aws-sam/build" --cache-dir "$ROOT/.aws-sam/cache" </dev/null
echo "==> sam build took $(( $(date +%s) - started )) s; artifacts:"
ls -l .aws-sam/build/*/bootstrap
