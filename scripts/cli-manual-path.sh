#!/usr/bin/env bash
# The manual path as people type it: the real AWS CLI (from PyPI) invokes the
# runbook function served by `cargo lambda watch`, which runs it against the
# local moto server. Called by scripts/test.sh after the integration tests.
#
#  1. Every `aws lambda invoke` the project prints (README.md, infra/README.md,
#     the next steps inside messages in shared/src) names `<stack>-runbook`,
#     passes `--cli-binary-format raw-in-base64-out` and a `--cli-read-timeout`
#     above the runbook's timeout in infra/template.yaml (a Rust format
#     string may fill the function name in at run time).
#  2. Those commands, pasted with only the function name and endpoint changed,
#     run `diagnose` and a dry-run `rollback` with a request_id, and a mistyped
#     action comes back as a function error naming the accepted actions.
#
# Tools (installed on first use into the project): .venv-cli (awscli from
# PyPI, pinned; PyPI has v1 only, see invoke() below),
# .venv-lambda (cargo-lambda, as scripts/package.sh installs it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1
AWSCLI_REQ="${AWSCLI_REQ:-awscli==1.46.3}"
CARGO_LAMBDA_REQ="cargo-lambda>=1.9,<2"

if [ ! -x .venv-cli/bin/aws ]; then
  echo "==> installing $AWSCLI_REQ into .venv-cli"
  python3 -m venv .venv-cli
  .venv-cli/bin/pip install --quiet "$AWSCLI_REQ"
fi
if [ ! -x .venv-lambda/bin/cargo-lambda ]; then
  echo "==> installing $CARGO_LAMBDA_REQ into .venv-lambda"
  python3 -m venv .venv-lambda
  .venv-lambda/bin/pip install --quiet "$CARGO_LAMBDA_REQ"
fi
AWS=(.venv-cli/bin/aws)
echo "==> $("${AWS[@]}" --version 2>&1)"

echo "==> 1. every printed 'aws lambda invoke' is pasteable"
python3 - <<'PY'
import pathlib, re, sys
root = pathlib.Path(".")
template = (root / "infra/template.yaml").read_text()
# The runbook function's Timeout: the first Timeout after its logical id.
m = re.search(r"\n  Runbook(?:Function)?:\n(?:.*\n)*?\s+Timeout: (\d+)", template)
if not m:
    sys.exit("cannot find the runbook's Timeout in infra/template.yaml")
timeout = int(m.group(1))
sources = [root / "README.md", root / "infra/README.md", *sorted((root / "docs").glob("*.md")),
           *sorted((root / "shared/src").rglob("*.rs"))]
commands = []
for path in sources:
    text = path.read_text()
    # A command runs to the end of its (backslash-continued) line or string.
    for hit in re.finditer(r"aws lambda invoke(?:\\\"|\\\n|[^\n\"])*", text):
        # Prose that only names the command ("`aws lambda invoke` reads it") has no flags.
        line_start = text.rfind("\n", 0, hit.start()) + 1
        is_comment = text[line_start:hit.start()].lstrip().startswith("//")
        if "--" in hit.group(0) and not is_comment:
            commands.append((path, text[: hit.start()].count("\n") + 1, hit.group(0)))
problems = []
for path, line, cmd in commands:
    flat = cmd.replace("\\\n", " ")
    if "--cli-binary-format raw-in-base64-out" not in flat and "--payload" in flat:
        problems.append(f"{path}:{line}: no --cli-binary-format raw-in-base64-out")
    read = re.search(r"--cli-read-timeout (\d+)", flat)
    if not read or int(read.group(1)) <= timeout:
        problems.append(f"{path}:{line}: --cli-read-timeout must exceed the runbook's {timeout} s timeout")
    # In Rust, a name filled in at run time (the runbook's configured name,
    # RUNBOOK_FUNCTION_NAME, by default `<stack>-runbook`) is the real one.
    interpolated = path.suffix == ".rs" and re.search(r"--function-name \{[a-z_]+\}", flat)
    if not interpolated and not re.search(r"--function-name \S*-runbook\b", flat):
        problems.append(f"{path}:{line}: not the real function name <stack>-runbook")
print(f"    {len(commands)} commands checked against the runbook's {timeout} s timeout")
if not commands or problems:
    sys.exit("\n".join(problems) or "no aws lambda invoke command found")
PY

start_moto
export AWS_PAGER=""
echo "==> 2. seeding a service on the local server"
eval "$("$VENV/bin/python" - <<'PY'
import os, boto3
ep = os.environ["AWS_ENDPOINT_URL"]
c = lambda s: boto3.client(s, endpoint_url=ep, region_name="us-east-1")
topic = c("sns").create_topic(Name="cli-alerts")["TopicArn"]
c("s3").create_bucket(Bucket="cli-evidence")
c("dynamodb").create_table(
    TableName="cli-state", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                          [("pk", "S"), ("sk", "S"), ("open_index", "S"), ("open_since", "N")]],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    GlobalSecondaryIndexes=[{"IndexName": "open-incident-keys", "Projection": {"ProjectionType": "KEYS_ONLY"},
                             "KeySchema": [{"AttributeName": "open_index", "KeyType": "HASH"},
                                           {"AttributeName": "open_since", "KeyType": "RANGE"}]}])
ecs = c("ecs")
ecs.create_cluster(clusterName="cli")
for image in ["api:1", "api:2"]:
    ecs.register_task_definition(
        family="cli-api", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": f"example/{image}", "memory": 512, "essential": True}])
ecs.create_service(
    cluster="cli", serviceName="api", taskDefinition="cli-api:2", desiredCount=2, launchType="FARGATE",
    networkConfiguration={"awsvpcConfiguration": {
        "subnets": os.environ["TEST_SUBNET_IDS"].split(","), "securityGroups": [os.environ["TEST_SECURITY_GROUP_ID"]]}})
print(f"export CLI_TOPIC={topic}")
PY
)"

ENV_FILE="$(mktemp)"
LOG="$(mktemp)"
OUT="$(mktemp -d)"
cat >"$ENV_FILE" <<EOF
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
NOTIFY_TOPIC_ARN=$CLI_TOPIC
EVIDENCE_BUCKET=cli-evidence
STATE_TABLE=cli-state
EOF
# cargo lambda watch runs `cargo run --package runbook --bin runbook` on the
# first invoke. Built alone, the runbook resolves other features for the SDK
# crates than the workspace build does (the tests crate adds its own), so on
# a clean machine that first invoke would rebuild the SDK for minutes and
# outlast the CLI's read timeout. Build it the same way here, untimed.
echo "==> building the runbook as cargo lambda watch runs it"
cargo build --color never --manifest-path Cargo.toml --package runbook --bin runbook --quiet
PORT="$(free_port)"
echo "==> cargo lambda watch on 127.0.0.1:$PORT"
.venv-lambda/bin/cargo-lambda lambda watch --ignore-changes -A 127.0.0.1 -P "$PORT" \
  --env-file "$ENV_FILE" -p runbook >"$LOG" 2>&1 &
WATCH_PID=$!
cleanup() {
  [ -n "${KEEP_WATCH:-}" ] && return 0
  kill "$WATCH_PID" 2>/dev/null || true
  pkill -P "$WATCH_PID" 2>/dev/null || true
  stop_moto
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null; then break; fi
  sleep 0.2
done

# As the README prints them, with the function name and endpoint of the
# emulator. PyPI carries AWS CLI v1 only: v1 sends --payload as the raw JSON
# it is given (what --cli-binary-format raw-in-base64-out makes v2 do) and
# rejects that v2 flag, so with v1 that one flag is left out; step 1 checks
# every printed command carries it for v2.
BINARY_FORMAT=()
case "$("${AWS[@]}" --version 2>&1)" in aws-cli/2.*) BINARY_FORMAT=(--cli-binary-format raw-in-base64-out) ;; esac
invoke() {
  "${AWS[@]}" --endpoint-url "http://127.0.0.1:$PORT" lambda invoke --function-name runbook \
    "${BINARY_FORMAT[@]}" --cli-read-timeout 310 --payload "$1" "$2" "${@:3}"
}
check() {
  python3 - "$@" <<'PY'
import json, sys
path, want = sys.argv[1], sys.argv[2:]
body = open(path).read()
print("    " + body[:300].replace("\n", " "))
missing = [w for w in want if w not in body]
if missing:
    sys.exit(f"{path}: expected {missing} in the reply")
PY
}

echo "==> diagnose"
invoke '{"action":"diagnose","cluster":"cli","service":"api"}' "$OUT/diagnose.json" >"$OUT/diagnose.meta"
check "$OUT/diagnose.json" '"kind":"runbook"' '"cluster":"cli"'
echo "==> dry-run rollback with a request_id"
invoke '{"action":"rollback","cluster":"cli","service":"api","reason":"cli test","dry_run":true,
         "request_id":"cli-1","requested_by":"ci@example.com"}' "$OUT/rollback.json" >"$OUT/rollback.meta"
check "$OUT/rollback.json" '"action":"rollback"' 'dry-run'
echo "==> a mistyped action"
# Real Lambda answers a function error with 200 and X-Amz-Function-Error;
# cargo lambda's emulator answers it with HTTP 500 and the same error body,
# which the CLI reports as an error (retrying a 500: one attempt here). The
# body the CLI received is read from its --debug log.
if AWS_MAX_ATTEMPTS=1 invoke '{"action":"rolback","cluster":"cli","service":"api"}' "$OUT/typo.json" \
     --debug >"$OUT/typo.meta" 2>"$OUT/typo.debug"; then
  echo "a mistyped action was accepted: $(cat "$OUT/typo.json")" >&2
  exit 1
fi
grep -o '{"errorType".*}' "$OUT/typo.debug" | head -1 | tr -d '\\' >"$OUT/typo.json" || true
check "$OUT/typo.json" '"errorType":"InvalidEvent"' rolback diagnose health-check rollback scale capture-evidence
echo "==> the manual path works: AWS CLI -> cargo lambda watch -> runbook -> local server"
