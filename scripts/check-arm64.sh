#!/usr/bin/env bash
# Run the deployable arm64 artifacts — the `bootstrap` files `scripts/build.sh`
# (sam build) left in .aws-sam/build/<Function>/ — under qemu-aarch64 through
# the Lambda Runtime API against the local moto server: every function answers
# every fixture of its input, and ecs-events opens incidents and sends alerts.
#
# Needs Debian's qemu-user and libc6-arm64-cross (installed with apt-get when
# missing and running as root). Usage: scripts/check-arm64.sh [build-dir]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
cd "$ROOT"
BUILD="${1:-$ROOT/.aws-sam/build}"
declare -A LOGICAL=(
  [ecs-events]=EcsEventsFunction [alarm-responder]=AlarmResponderFunction
  [pipeline-events]=PipelineEventsFunction [scheduled-reports]=ScheduledReportsFunction
  [runbook]=RunbookFunction [deployment-hook]=DeploymentHookFunction
)
if ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
  echo "==> apt-get install qemu-user libc6-arm64-cross"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null
fi
BINS="$(mktemp -d)"
for bin in "${!LOGICAL[@]}"; do
  artifact="$BUILD/${LOGICAL[$bin]}/bootstrap"
  file "$artifact" | grep -q "ARM aarch64" || { echo "$artifact: not an arm64 executable" >&2; exit 1; }
  ln -s "$artifact" "$BINS/$bin"
  echo "    $bin: $artifact ($(du -h "$artifact" | cut -f1))"
done
start_moto
echo "==> the arm64 artifacts under qemu-aarch64"
AUTOPILOT_BIN_DIR="$BINS" AUTOPILOT_EXEC_WRAPPER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
  cargo test --quiet -p autopilot-tests --test it -- --exact \
  functions::every_function_should_start_and_answer_its_fixtures_with_an_outcome \
  incident_core::a_teams_filter_policy_receives_its_services_alert_and_resolution_and_nothing_else
echo "==> all five arm64 artifacts answered real events"
