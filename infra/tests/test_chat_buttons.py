"""The chat buttons (AWS::Chatbot::CustomAction) against the notifications
they attach to.

The notifications are the Rust renderers' own output
(`infra/tests/notifications/<eventType>.json`, written and kept equal by
`the_chat_button_fixtures_are_what_the_renderers_produce` in
shared/src/notify/chat.rs). For every custom action and every notification
kind: the button shows exactly where intended (its criteria against the
notification's variables), every variable of its command resolves from the
notification, the command (function name filled in) is at most 100
characters, names the runbook function and invokes it asynchronously, and
the resolved payload is a runbook request of the intended action.

How Amazon Q Developer reads a variable from a notification is taken to be
a dotted path from `event` (`event.metadata.additionalContext.<key>`), as
its console writes them for custom notifications; resolved here the same way.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import INFRA, Resolver

NOTIFICATIONS = INFRA / "tests" / "notifications"
COMMAND_MAX = 100
# The longest stack name the 100-character limit holds for (documented in infra/README.md).
LONGEST_STACK = "a" * 25

INCIDENT_ALERTS = {"incident-opened", "incident-update", "incident-escalated"}
APPROVALS = {"deployment-approval"}
# action logical id -> (runbook action of its payload, the notification kinds it shows on)
INTENDED = {
    "ChatAcknowledgeAction": ("acknowledge", INCIDENT_ALERTS),
    "ChatDiagnoseAction": ("diagnose", INCIDENT_ALERTS),
    "ChatRollbackAction": ("rollback", INCIDENT_ALERTS),
    "ChatContinueDeploymentAction": ("continue-deployment", APPROVALS),
    "ChatRollbackDeploymentAction": ("rollback-deployment", APPROVALS),
}


def notifications() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(NOTIFICATIONS.glob("*.json"))}


def variable(notification: dict, path: str):
    """`event.a.b.c` read from the notification (None when absent)."""
    parts = path.split(".")
    assert parts[0] == "event", path
    node = notification
    for p in parts[1:]:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node if isinstance(node, str) else None


def shows(attachment: dict, values: dict) -> bool:
    for c in attachment.get("Criteria", []):
        v = values.get(c["VariableName"])
        if c["Operator"] == "HAS_VALUE" and not v:
            return False
        if c["Operator"] == "EQUALS" and v != c.get("Value"):
            return False
    return True


def actions(sam_template, stack_name):
    r = Resolver(sam_template, {}, stack_name=stack_name)
    res = r.resources()
    function = res["RunbookFunction"]["Properties"]["FunctionName"]
    out = {}
    for logical, a in res.items():
        if a["Type"] != "AWS::Chatbot::CustomAction":
            continue
        props = a["Properties"]
        command = props["Definition"]["CommandText"].replace("<Ref RunbookFunction>", function)
        out[logical] = (props, command, function)
    return out


def test_the_kinds_rendered_are_every_kind():
    kinds = set(notifications())
    assert INCIDENT_ALERTS | APPROVALS <= kinds, kinds
    assert {"incident-resolved", "runbook-action", "report", "alarm-notice"} <= kinds, kinds


def test_the_template_defines_exactly_the_intended_buttons(sam_template):
    assert set(actions(sam_template, "autopilot")) == set(INTENDED)


@pytest.mark.parametrize("stack_name", ["autopilot", LONGEST_STACK])
def test_every_command_names_the_runbook_invokes_it_asynchronously_and_fits(sam_template, stack_name):
    for logical, (props, command, function) in actions(sam_template, stack_name).items():
        assert function == f"{stack_name}-runbook"
        assert re.search(rf"--function-name {re.escape(function)}(\s|$)", command), (logical, command)
        assert "--invocation-type Event" in command, (logical, command)
        assert command.startswith("lambda invoke "), (logical, command)
        assert len(command) <= COMMAND_MAX, (logical, len(command), command)
        assert len(props["ActionName"]) <= 64 and re.fullmatch(r"[a-zA-Z0-9_-]+", props["ActionName"]), logical
        # No alias: they are account-wide, 30 characters at most, and the buttons need none.
        assert "AliasName" not in props, logical


@pytest.mark.parametrize("logical", sorted(INTENDED))
def test_each_button_resolves_against_every_notification_it_shows_on(sam_template, logical):
    props, command, _ = actions(sam_template, "autopilot")[logical]
    action, intended_kinds = INTENDED[logical]
    shown_on = set()
    for kind, n in notifications().items():
        for attachment in props["Attachments"]:
            assert 1 <= len(attachment["ButtonText"]) <= 50
            used = set(re.findall(r"\$([A-Za-z0-9_-]+)", command))
            assert used <= set(attachment["Variables"]), (logical, used, attachment["Variables"])
            values = {name: variable(n, path) for name, path in attachment["Variables"].items()}
            if not shows(attachment, values):
                continue
            shown_on.add(kind)
            unresolved = [v for v in used if not values.get(v)]
            assert not unresolved, f"{logical} on {kind}: {unresolved} do not resolve"
            resolved = re.sub(r"\$([A-Za-z0-9_-]+)", lambda m: values[m.group(1)], command)
            payload = resolved.split("--payload ", 1)[1]
            assert " " not in payload, f"{logical} on {kind}: the payload must be one word: {payload}"
            request = json.loads(payload)
            assert request["action"] == action, (logical, kind, request)
            ctx = n["metadata"]["additionalContext"]
            assert (request["cluster"], request["service"]) == (ctx["cluster"], ctx["service"]), request
            assert n["metadata"].get("enableCustomActions") is True, kind
            if action in ("continue-deployment", "rollback-deployment"):
                assert request["hook_id"] and request["request_id"] and request["requested_by"], request
    assert shown_on == intended_kinds, f"{logical} shows on {sorted(shown_on)}, intended {sorted(intended_kinds)}"
