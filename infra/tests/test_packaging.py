"""The deploy paths around the template: infra/samconfig.toml (sam build /
sam deploy) and the Terraform wrapper (infra/terraform/main.tf), checked
offline against the template so that neither drifts from it.

terraform init/validate cannot run here (no provider download), so main.tf
is read with a few regular expressions: enough for its flat variable,
parameter and output blocks, not an HCL parser.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from conftest import INFRA

SAMCONFIG = INFRA / "samconfig.toml"
MAIN_TF = INFRA / "terraform" / "main.tf"


# ---------------------------------------------------------------------------
# samconfig.toml
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samconfig():
    return tomllib.loads(SAMCONFIG.read_text())


def test_samconfig_opts_in_to_the_cargo_lambda_preview(samconfig):
    """Older SAM CLI releases build rust-cargolambda only with beta features
    on ("Building Rust Lambda functions with Cargo Lambda in AWS SAM":
    beta_features = true under [default.build.parameters] and
    [default.sync.parameters])."""
    assert samconfig["version"] == 0.1
    assert samconfig["default"]["build"]["parameters"]["beta_features"] is True
    assert samconfig["default"]["sync"]["parameters"]["beta_features"] is True
    # SAM reads the file next to the template and resolves this in infra/
    assert samconfig["default"]["build"]["parameters"]["template_file"] == "template.yaml"
    assert (INFRA / "template.yaml").is_file()


def test_samconfig_deploys_without_questions(samconfig):
    g = samconfig["default"]["global"]["parameters"]
    d = samconfig["default"]["deploy"]["parameters"]
    assert g["stack_name"] and len(g["stack_name"]) <= 40
    assert set(d["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert d["resolve_s3"] is True          # code zips and the >51,200-byte template need a bucket
    assert d["confirm_changeset"] is False  # non-interactive; --confirm-changeset to review
    # parameters: the template's defaults first (DryRun=true), then each
    # parameter's previous value; a fixed override would undo DryRun=false
    # on the next routine deploy
    assert "parameter_overrides" not in d


def test_samconfig_is_committed_despite_the_root_ignore():
    """The repository root ignores samconfig.toml (personal deploy answers);
    infra/.gitignore re-includes this one."""
    lines = (INFRA / ".gitignore").read_text().splitlines()
    assert "!samconfig.toml" in lines


# ---------------------------------------------------------------------------
# terraform/main.tf
# ---------------------------------------------------------------------------
def tf_blocks(kind: str) -> dict[str, str]:
    """{label(s): body} of the top-level `kind "label" ["label"] { ... }`
    blocks; two labels are joined with a dot (resource type.name)."""
    text = MAIN_TF.read_text()
    out = {}
    for m in re.finditer(rf'^{kind} ((?:"[^"]+" )+)\{{\n(.*?)^\}}', text, re.S | re.M):
        out[".".join(re.findall(r'"([^"]+)"', m.group(1)))] = m.group(2)
    return out


def tf_default(body: str):
    m = re.search(r"^  default\s+=\s+(.+)$", body, re.M)
    assert m, body
    return json.loads(m.group(1))   # the defaults here are JSON literals: "x", 1, true, [], ["/ecs/"]


def stack_parameters() -> dict[str, str]:
    body = tf_blocks("resource")["aws_cloudformation_stack.autopilot"]
    block = re.search(r"^  parameters = \{\n(.*?)^  \}", body, re.S | re.M).group(1)
    return dict(re.findall(r"^    (\w+)\s+=\s+(.+)$", block, re.M))


# The fleet's parameters and outputs (issue 23) are not in the Terraform
# wrapper yet (infra/terraform/ was left to its owner when the fleet landed):
# a Terraform deployment is a single-account one. Listed here so that the
# gap stays exactly this and shrinks when the wrapper catches up.
NOT_YET_IN_TERRAFORM = {"MemberAccounts", "FleetRegions", "OrganizationId", "MemberRoleName", "MemberExternalId"}
OUTPUTS_NOT_YET_IN_TERRAFORM = {"FleetEventBusArn"}


def test_terraform_passes_every_template_parameter(sam_template):
    assert set(stack_parameters()) == set(sam_template["Parameters"]) - NOT_YET_IN_TERRAFORM
    assert NOT_YET_IN_TERRAFORM <= set(sam_template["Parameters"])


def test_terraform_defaults_are_the_template_defaults(sam_template):
    variables = {name: tf_default(body) for name, body in tf_blocks("variable").items() if "default" in body}
    for param, expr in stack_parameters().items():
        m = re.fullmatch(r'(?:(tostring|join)\((?:",", )?)?var\.(\w+)\)?', expr)
        assert m, (param, expr)
        fn, var = m.groups()
        value = variables[var]
        if fn == "join":
            value = ",".join(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        assert str(value) == str(sam_template["Parameters"][param]["Default"]), (param, var, value)


def test_terraform_exposes_every_stack_output(sam_template):
    outputs = tf_blocks("output")
    exposed = set()
    for name, body in outputs.items():
        (key,) = re.findall(r'aws_cloudformation_stack\.autopilot\.outputs\["(\w+)"\]', body)
        exposed.add(key)
    assert exposed == set(sam_template["Outputs"]) - OUTPUTS_NOT_YET_IN_TERRAFORM
    assert len(outputs) == len(exposed)
