#!/usr/bin/env bash
# Offline checks of the deployable infrastructure (infra/):
#
#   1. cfn-lint infra/template.yaml and infra/member.yaml (the fleet member StackSet)
#   2. sam validate --lint -t infra/template.yaml       (dummy region, no AWS call)
#   3. checkov --skip-download on the template, on infra/member.yaml and on infra/terraform
#   4. terraform fmt -check infra/terraform              (only if terraform is on PATH)
#   5. pytest infra/tests: the template translated with samtranslator and
#      deployed into moto's CloudFormation, IAM least-privilege checks, and
#      every EventBridge rule pattern against real sample events
#
# Tools live in project-local virtualenvs created on first use (PyPI only):
#   .venv-infra    cfn-lint, aws-sam-translator, moto[server], boto3, pytest
#   .venv-sam      aws-sam-cli
#   .venv-checkov  checkov      (checkov and aws-sam-cli pin conflicting boto3)
# Their requirements are in infra/requirements/*.txt; a virtualenv is updated
# when its requirements file changes. A local AWS endpoint (moto) is started on
# a free loopback port and stopped on exit, unless AWS_ENDPOINT_URL is already
# set, in which case that endpoint is used.
#
# Runs every step, then exits non-zero if any failed. Usage:
#   scripts/check-infra.sh            (from any directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
# Offline and quiet: no telemetry, a region for tools that insist on one, and
# dummy credentials so nothing can reach a real account by accident.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN || true

say() { printf '\n==> %s\n' "$*"; }

# ensure_venv DIR REQUIREMENTS_FILE
ensure_venv() {
  local dir="$1" req="$2" stamp="$1/.requirements.txt"
  if [[ -x "$dir/bin/python" ]] && cmp -s "$req" "$stamp"; then
    return 0
  fi
  say "installing $(basename "$dir") from $req"
  [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip
  "$dir/bin/python" -m pip install --quiet -r "$req"
  cp "$req" "$stamp"
}

ensure_venv .venv-infra infra/requirements/infra.txt
ensure_venv .venv-sam infra/requirements/sam.txt
ensure_venv .venv-checkov infra/requirements/checkov.txt

failed=()
step() {
  local name="$1"; shift
  say "$name"
  local t0=$SECONDS
  if "$@"; then
    echo "--- $name: ok ($((SECONDS - t0)) s)"
  else
    echo "--- $name: FAILED ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}

step "cfn-lint" .venv-infra/bin/cfn-lint infra/template.yaml
step "cfn-lint (member)" .venv-infra/bin/cfn-lint infra/member.yaml
step "sam validate --lint" .venv-sam/bin/sam validate --lint -t infra/template.yaml --region us-east-1
step "checkov (template)" .venv-checkov/bin/checkov --skip-download --quiet --compact \
  --framework cloudformation -f infra/template.yaml
step "checkov (member)" .venv-checkov/bin/checkov --skip-download --quiet --compact \
  --framework cloudformation -f infra/member.yaml
step "checkov (terraform example)" .venv-checkov/bin/checkov --skip-download --quiet --compact \
  --framework terraform -d infra/terraform

if command -v terraform >/dev/null 2>&1; then
  step "terraform fmt -check" env TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -diff infra/terraform
else
  say "terraform fmt -check: skipped (terraform is not installed; it is neither a Debian nor a PyPI package)"
fi

# Local AWS endpoint for the tests.
MOTO_PID=""
cleanup() {
  if [[ -n "$MOTO_PID" ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
  port="$(.venv-infra/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  .venv-infra/bin/moto_server -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/check-infra-moto.$$.log" 2>&1 &
  MOTO_PID=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if .venv-infra/bin/python -c "import urllib.request as u; u.urlopen('$AWS_ENDPOINT_URL/moto-api/', timeout=1)" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      echo "moto_server exited early:"; cat "${TMPDIR:-/tmp}/check-infra-moto.$$.log"; exit 1
    fi
    sleep 0.1
  done
  say "local AWS endpoint (moto) at $AWS_ENDPOINT_URL"
else
  say "using AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
fi

if ((${#failed[@]})); then
  step "pytest infra/tests" .venv-infra/bin/python -m pytest infra/tests -p no:cacheprovider -ra --tb=short -q
  echo
  echo "check-infra: FAILED: ${failed[*]}"
  exit 1
fi

# Last, so that its summary line closes the output.
say "pytest infra/tests"
.venv-infra/bin/python -m pytest infra/tests -p no:cacheprovider -ra --tb=short -q
