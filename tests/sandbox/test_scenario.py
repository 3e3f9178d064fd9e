"""Scenarios: validation with exact one-line errors, and what each scenario makes the data plane do
(through ``SandboxState``, the control plane's implementation of ``DataPlaneView``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.errors import ScenarioError
from runbook_lib.sandbox.dataplane_view import DataPlaneView
from runbook_lib.sandbox.scenario import available, load_scenario

from .kit import make_state

FRONTEND, API = "staging.netrasystems.ai", "api-staging.netrasystems.ai"
REQUIRED_SCENARIOS = {"healthy", "issue-1278", "blackout", "connector-saturated", "cloudsql-stopped",
                      "certificate-mismatch", "lb-timeouts", "secrets-missing", "instance-groups",
                      "cloudrun-timeouts", "operation-fails"}


def test_every_shipped_scenario_loads() -> None:
    names = available()
    assert REQUIRED_SCENARIOS <= set(names)
    for name in names:
        assert load_scenario(name).name == name


def test_issue_1278_has_all_five_faults() -> None:
    s = load_scenario("issue-1278")
    # states GCP can have: connector min >= 2; stopped Cloud SQL = RUNNABLE + activation policy NEVER
    assert (s.connector.min_instances, s.connector.max_instances, s.demand_instances) == (2, 3, 6)
    assert (s.cloudsql.state, s.cloudsql.activation_policy) == ("RUNNABLE", "NEVER")
    assert s.certificates.managed == [] and [c.domains for c in s.certificates.self_managed] == [["legacy"]]
    assert s.load_balancer.topology == "serverless"
    assert (s.cloud_run.timeout_s, s.cloud_run.cpu_boost, s.cloud_run.min_instances) == (300, False, 0)
    assert (s.services.startup_s, s.secrets.missing, s.secrets.disabled) == (600, 3, 1)


@pytest.mark.parametrize("text, message", [
    ("connector:\n  sate: READY\n",
     "connector.sate: unknown key (expected one of: state, min_instances, max_instances, network, ip_cidr_range)"),
    ("connector:\n  state: RUNNING\n",
     "connector.state: expected 'READY', 'CREATING', 'DELETING', 'ERROR' or 'UPDATING', got 'RUNNING'"),
    ("cloudsql:\n  activation_policy: SOMETIMES\n",
     "cloudsql.activation_policy: expected 'ALWAYS', 'NEVER' or 'ON_DEMAND', got 'SOMETIMES'"),
    ("certificates:\n  managed:\n    - domains: [www]\n",
     "certificates.managed.0.domains: expected domain roles from frontend, api, wildcard, legacy, got www"),
    ("certificates:\n  attached: [nope]\n",
     "certificates.attached: expected names of certificates listed in this scenario, got 'nope'"),
    ("secrets:\n  missing: lots\n",
     "secrets.missing: expected a list of secret names or a count >= 0, got 'lots'"),
    ("connector:\n  min_instances: 5\n  max_instances: 3\n",
     "connector.min_instances: must be <= max_instances (3), got 5"),
    ("cloud_run:\n  env: {A: 'https://{old}'}\n",
     "cloud_run.env: expected placeholders {frontend}, {api} or {legacy} in A, got {old}"),
    ("- just\n- a list\n", "(top level): expected a mapping of sections, got list"),
    ("connector: [\n", "line 2: expected valid YAML (expected the node content, but found '<stream end>')"),
])
def test_invalid_scenario_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}: {message}"


def test_unknown_scenario_name_lists_the_available_ones() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario("issue-9999")
    assert str(err.value) == f"issue-9999: (scenario): unknown scenario, expected one of: {', '.join(available())}"


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: \(file\): file not found$"):
        load_scenario(tmp_path / "nope.yaml")


def test_state_implements_the_dataplane_view() -> None:
    state = make_state("healthy")
    view: DataPlaneView = state  # the Protocol the data plane codes against
    assert view.time_scale == 0.02


def test_healthy_scenario_is_healthy_on_the_wire() -> None:
    s = make_state("healthy")
    assert s.proxy_policy().mode == "pass"
    assert s.certificate_for(FRONTEND) == s.certificate_for(API) == "valid"
    assert s.ws_lifetime_s() == pytest.approx(3600 * 0.02)  # the serving Cloud Run revision's timeout
    assert s.secret_problems() == [] and s.startup_remaining_s() == 0
    assert all(problems == [] for problems in s.health_summary().values())
    assert s.connector_instances() == 3
    assert s.secret_value("jwt-secret-staging")  # the services can read their own secrets


def test_issue_1278_on_the_wire() -> None:
    s = make_state("issue-1278")
    policy = s.proxy_policy()
    assert policy.mode == "reset" and "NEVER" in policy.reason  # the database is the first wall hit
    assert s.certificate_for(API) == "mismatch" and s.certificate_for(FRONTEND) == "mismatch"
    assert s.certificate_for("api.staging.netrasystems.ai") == "valid"  # the legacy name still matches
    assert s.ws_lifetime_s() == pytest.approx(300 * 0.02)  # Cloud Run timeout 300 s, not a backend timeout
    assert len(s.secret_problems()) == 4
    assert s.secret_value(s.secret_problems()[0]) is None
    assert all(p == [] for p in s.health_summary().values())  # serverless NEGs: no health checks to fail


@pytest.mark.parametrize("scenario, proxy_mode, api_cert, broken_secrets, unhealthy", [
    ("connector-saturated", "delay", "valid", 0, False),
    ("connector-not-ready", "blackhole", "valid", 0, False),
    ("cloudsql-stopped", "reset", "valid", 0, False),
    ("certificate-mismatch", "pass", "mismatch", 0, False),
    ("certificate-expired", "pass", "expired", 0, False),
    ("certificate-not-visible", "pass", "mismatch", 0, False),
    ("lb-timeouts", "pass", "valid", 0, True),
    ("secrets-missing", "pass", "valid", 4, False),
    ("blackout", "blackhole", "blackhole", 0, False),
])
def test_single_fault_scenarios_break_one_thing(scenario: str, proxy_mode: str, api_cert: str,
                                                broken_secrets: int, unhealthy: bool) -> None:
    s = make_state(scenario)
    assert s.proxy_policy().mode == proxy_mode
    assert s.certificate_for(API) == api_cert
    assert len(s.secret_problems()) == broken_secrets
    assert any(s.health_summary().values()) is unhealthy
    assert s.blackout() is (scenario == "blackout")


def test_saturated_connector_delays_by_the_scaled_time_and_caps_connections() -> None:
    policy = make_state("connector-saturated").proxy_policy()
    assert policy.delay_s == pytest.approx(20 * 0.02)
    assert policy.max_connections == 3
    assert "max_instances 3 < demand 6" in policy.reason


def test_warmup_counts_down_with_the_injected_clock() -> None:
    now = [100.0]
    from runbook_lib.sandbox.scenario import validate_scenario
    from runbook_lib.sandbox.state import SandboxState

    from .kit import sandbox_params

    scenario = validate_scenario({"name": "warm", "services": {"warmup_s": 100},
                                  "load_balancer": {"topology": "instance-groups"}}, "inline")
    s = SandboxState(sandbox_params("healthy"), scenario, clock=lambda: now[0])
    assert s.startup_remaining_s() == pytest.approx(2.0)  # 100 real-world seconds at 0.02
    assert any(s.health_summary().values())
    now[0] += 2.5
    assert s.startup_remaining_s() == 0 and not any(s.health_summary().values())


def test_secret_names_in_a_scenario_must_be_required_ones() -> None:
    from runbook_lib.errors import RunbookError
    from runbook_lib.sandbox.scenario import validate_scenario
    from runbook_lib.sandbox.state import SandboxState

    from .kit import sandbox_params

    scenario = validate_scenario({"name": "x", "secrets": {"missing": ["not-a-secret"]}}, "inline")
    with pytest.raises(RunbookError, match="secrets.missing: expected names from secrets.required, got not-a-secret"):
        SandboxState(sandbox_params("healthy"), scenario)


def test_every_scenario_describes_itself() -> None:
    from runbook_lib.sandbox.scenario import describe_scenarios

    described = dict(describe_scenarios())
    assert set(described) == set(available()) and all(described.values())
