#!/usr/bin/env bash
# Which adapter functions each function binary links: a reviewer's
# cross-check of shared/src/iam.rs (which functions reach which AWS call).
#
# Linking is an upper bound of reaching: generic code (the incident shell,
# the engine) links paths a function never takes, e.g. scheduled-reports
# links ecs::update_service through the shell's acting port although an
# escalation tick never acts. A function that does NOT link an adapter
# function never calls it, so a row of the table naming such a function is
# wrong (or the build is stale).
#
# Usage: scripts/iam-reach.sh [target/debug]     (after cargo build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
FUNCTIONS=(ecs-events alarm-responder pipeline-events scheduled-reports runbook deployment-hook)
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
for f in "${FUNCTIONS[@]}"; do
  [[ -x "$DIR/$f" ]] || { echo "no binary $DIR/$f: cargo build first" >&2; exit 1; }
  nm -C "$DIR/$f" | grep -oE 'shared::adapters::[a-z0-9_]+(::[A-Za-z0-9_]+)?::[a-z0-9_]+' \
    | sed -E 's/^shared::adapters:://' | sort -u >"$tmp/$f"
done
printf '%-52s' "adapter function"; for f in "${FUNCTIONS[@]}"; do printf ' %-17s' "$f"; done; echo
sort -u "$tmp"/* | while read -r sym; do
  printf '%-52s' "$sym"
  for f in "${FUNCTIONS[@]}"; do
    if grep -qx "$sym" "$tmp/$f"; then printf ' %-17s' linked; else printf ' %-17s' -; fi
  done
  echo
done

# Every row of the table: each function it names must link its adapter
# function (state:: rows name a store module: any of its functions counts).
python3 - "$tmp" "$ROOT/infra/iam-actions.json" <<'PY'
import json, sys, pathlib
tmp, table = pathlib.Path(sys.argv[1]), json.loads(pathlib.Path(sys.argv[2]).read_text())
linked = {f.name: set(f.read_text().split()) for f in tmp.iterdir()}
wrong = []
for c in table["calls"]:
    for fn in c["functions"]:
        syms = linked[fn]
        a = c["adapter"]
        ok = any(s == a or s.startswith(a + "::") for s in syms) if a.startswith("state::") else a in syms
        if not ok:
            wrong.append(f'{fn} does not link {c["adapter"]} ({c["sdk"]}), yet the table says it calls it')
# The other way round only informs: linked, yet not in the table (a path
# the function links but, per the table, never takes - review each).
named = {(c["adapter"], fn) for c in table["calls"] for fn in c["functions"]}
for c in sorted({c["adapter"] for c in table["calls"] if not c["adapter"].startswith("state::")}):
    extra = [fn for fn, syms in sorted(linked.items()) if c in syms and (c, fn) not in named]
    if extra:
        print(f"linked but not in the table: {c} <- {', '.join(extra)}")
print("\n".join(wrong) or f'every row of the table is linked by the functions it names ({len(table["calls"])} rows)')
sys.exit(1 if wrong else 0)
PY
