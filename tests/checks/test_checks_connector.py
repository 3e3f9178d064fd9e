"""Connector checks: PASS and FAIL paths with exact ids, remediation commands with the real names."""
from __future__ import annotations

from runbook_lib.checks import connector
from runbook_lib.gcp.networkmanagement import ConnectivityTest
from runbook_lib.probes.base import Reason
from runbook_lib.results import ResultSet, Severity, Status
from tests.checks.checks_testkit import (
    connectivity_test_body,
    failed,
    fixture,
    healthy_evidence,
    make_params,
    metric,
    ok,
    probe,
    recorded,
    run_services_body,
)

PARAMS = make_params()
IDS = ["connector.exists", "connector.state", "connector.instances", "connector.network", "connector.ip_range",
       "connector.attachment", "connector.saturation", "connector.path"]


def results(ev, params=PARAMS) -> ResultSet:
    return ResultSet(results=connector.evaluate(ev, params))


def test_healthy_connector_passes_with_stable_ids():
    rs = results(healthy_evidence())
    assert [r.id for r in rs] == IDS
    assert all(r.status is Status.PASS and r.severity is Severity.critical for r in rs)


def test_missing_connector_fails_with_the_create_command_and_skips_the_rest():
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = failed("vpcaccess.connector", "not_found", "connector staging-connector not found", 404)
    rs = results(ev)
    exists = rs.by_id("connector.exists")
    assert exists.status is Status.FAIL
    assert ("gcloud compute networks vpc-access connectors create staging-connector --region us-central1 "
            "--network staging-vpc --range 10.1.0.0/28 --min-instances 2 --max-instances 10 "
            "--machine-type e2-micro --project netra-staging") in exists.remediation
    assert [r.status for r in rs][1:] == [Status.SKIP] * 6
    assert all("does not exist" in r.reason for r in rs.results[1:])


def test_error_state_undersized_wrong_network():
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = ok("vpcaccess.connector", fixture("vpcaccess--connector-error-undersized.json"))
    rs = results(ev)
    assert rs.by_id("connector.state").status is Status.FAIL
    assert "connectors delete staging-connector" in rs.by_id("connector.state").remediation
    inst = rs.by_id("connector.instances")
    assert inst.status is Status.FAIL and inst.observed == "min 1, max 3 instances"
    assert inst.remediation == ("`gcloud compute networks vpc-access connectors update staging-connector --region "
                                "us-central1 --min-instances 2 --max-instances 10 --project netra-staging`")
    assert rs.by_id("connector.network").status is Status.FAIL and rs.by_id("connector.network").observed == "default"
    assert rs.by_id("connector.ip_range").status is Status.FAIL


def test_transient_state_warns_to_wait():
    ev = healthy_evidence()
    body = {**fixture("vpcaccess--connector-ready.json"), "state": "UPDATING"}
    ev.api["vpcaccess.connector"] = ok("vpcaccess.connector", body)
    state = results(ev).by_id("connector.state")
    assert state.status is Status.WARN and "wait" in state.reason


def test_subnet_connector_network_is_a_warning_with_the_subnet_named():
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = ok("vpcaccess.connector", fixture("vpcaccess--connector-subnet.json"))
    rs = results(ev, make_params(**{"connector.subnet": "staging-connector-subnet"}))
    assert rs.by_id("connector.network").status is Status.WARN
    assert "staging-connector-subnet" in rs.by_id("connector.network").reason
    assert rs.by_id("connector.ip_range").status is Status.PASS


def test_saturated_connector_fails():
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = ok("vpcaccess.connector", {**fixture("vpcaccess--connector-ready.json"),
                                                                "maxInstances": 3})
    ev.metrics["monitoring.connector_instances"] = metric(
        "monitoring.connector_instances", "vpcaccess.googleapis.com/connector/instances", [2, 3, 3])
    sat = results(ev).by_id("connector.saturation")
    assert sat.status is Status.FAIL and "saturated" in sat.reason and "max 3" in sat.observed
    assert "--max-instances 10" in sat.remediation


def test_saturation_at_the_ceiling_suggests_a_bigger_machine():
    ev = healthy_evidence()
    ev.metrics["monitoring.connector_instances"] = metric(
        "monitoring.connector_instances", "vpcaccess.googleapis.com/connector/instances", [10, 10])
    sat = results(ev).by_id("connector.saturation")
    assert sat.status is Status.FAIL and "--machine-type e2-standard-4" in sat.remediation


def test_past_saturation_warns():
    ev = healthy_evidence()
    ev.metrics["monitoring.connector_instances"] = metric(
        "monitoring.connector_instances", "vpcaccess.googleapis.com/connector/instances", [10, 4])
    assert results(ev).by_id("connector.saturation").status is Status.WARN


def test_no_metric_data_skips_with_a_reason_and_metric_error_is_error():
    ev = healthy_evidence()
    ev.metrics["monitoring.connector_instances"] = metric(
        "monitoring.connector_instances", "vpcaccess.googleapis.com/connector/instances", [])
    skip = results(ev).by_id("connector.saturation")
    assert skip.status is Status.SKIP and "no vpcaccess.googleapis.com/connector/instances data" in skip.reason
    ev.metrics["monitoring.connector_instances"] = ev.metrics["monitoring.connector_instances"].model_copy(
        update={"ok": False, "series": [], "error": failed("x", "permission", "grant roles/monitoring.viewer").error})
    err = results(ev).by_id("connector.saturation")
    assert err.status is Status.ERROR and "roles/monitoring.viewer" in err.reason


def test_attachment_lists_services_not_using_the_connector():
    ev = healthy_evidence()
    body = run_services_body()
    body["services"][1]["template"].pop("vpcAccess")
    body["services"][2]["template"]["vpcAccess"]["egress"] = "PRIVATE_RANGES_ONLY"
    ev.api["run.services"] = ok("run.services", body)
    att = results(ev).by_id("connector.attachment")
    assert att.status is Status.FAIL
    assert att.observed == "auth-staging: connector none; netra-frontend-staging: egress PRIVATE_RANGES_ONLY"
    assert ("`gcloud run services update auth-staging --region us-central1 --vpc-connector staging-connector "
            "--vpc-egress all-traffic --project netra-staging`") in att.remediation


def test_failed_read_makes_every_dependent_check_error_never_pass():
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = failed("vpcaccess.connector", "permission",
                                           "permission denied on vpcaccess in project netra-staging: the caller needs roles/vpcaccess.viewer", 403)
    rs = results(ev)
    assert [r.status for r in rs][:5] == [Status.ERROR] * 5
    assert all("roles/vpcaccess.viewer" in r.reason for r in rs.results[:5])
    assert rs.by_id("connector.attachment").status is Status.PASS  # independent evidence still judged


def test_disabled_api_skips_with_the_enable_command():
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = failed(
        "vpcaccess.connector", "api_disabled",
        "the Serverless VPC Access API (vpcaccess.googleapis.com) is not enabled in project netra-staging: "
        "run `gcloud services enable vpcaccess.googleapis.com --project netra-staging`", 403)
    rs = results(ev)
    assert all(r.status is Status.SKIP for r in rs.results[:5])
    assert "gcloud services enable vpcaccess.googleapis.com --project netra-staging" in rs.by_id("connector.state").reason


def test_missing_record_is_error():
    ev = healthy_evidence()
    del ev.api["vpcaccess.connector"]
    assert results(ev).by_id("connector.exists").status is Status.ERROR


# -- connector.path: the Connectivity Test, hop by hop ------------------------------------------------

def test_recorded_connectivity_test_parses_hop_by_hop():
    test = ConnectivityTest.from_json(recorded("gcpdiag/vpc2--connectivity-test.json"))  # gcpdiag vpc2, as recorded
    assert test.result == "REACHABLE" and test.first_failure() is None
    assert [s.hop for s in test.traces[0]] == ["source", "firewall", "route", "nat", "instance"]
    assert test.destination == "151.101.3.5:443"


def test_reachable_path_passes_with_hops_and_probe_timings():
    r = results(healthy_evidence()).by_id("connector.path")
    assert r.status is Status.PASS
    assert r.observed.startswith("REACHABLE from netra-backend-staging-00042-abc to netra-staging-db:5432: "
                                 "source -> connector -> firewall -> route -> instance; probe p50 resolve 0.000 s")
    assert "0/10 failed" in r.observed


def test_blackholed_connector_names_the_connector_hop_beside_the_timeouts():
    ev = healthy_evidence()
    ev.api["networkmanagement.connectivityTest"] = ok("networkmanagement.connectivityTest", connectivity_test_body(
        "UNREACHABLE", break_at="ARRIVE_AT_VPC_CONNECTOR", cause="VPC_CONNECTOR_NOT_RUNNING"))
    ev.probes["postgres.connect"] = [probe("postgres", "10.20.0.3:5432", False, reason=Reason.timeout,
                                           detail="no answer during connect", waiting_for="connect") for _ in range(4)]
    r = results(ev).by_id("connector.path")
    assert r.status is Status.FAIL and r.upstream == []
    assert r.reason.startswith("the path breaks at the connector hop: ARRIVE_AT_VPC_CONNECTOR (vpcConnector "
                               "staging-connector), cause VPC_CONNECTOR_NOT_RUNNING")
    assert "source -> connector -> DROP(VPC_CONNECTOR_NOT_RUNNING);" in r.observed and "4/4 failed; timed out during connect (4)" in r.observed
    assert "gcloud compute networks vpc-access connectors describe staging-connector" in r.remediation


def test_firewall_and_instance_hops_get_their_own_advice():
    ev = healthy_evidence()
    ev.api["networkmanagement.connectivityTest"] = ok("networkmanagement.connectivityTest", connectivity_test_body(
        "UNREACHABLE", break_at="APPLY_EGRESS_FIREWALL_RULE", cause="FIREWALL_RULE"))
    r = results(ev).by_id("connector.path")
    assert r.status is Status.FAIL and "firewall hop" in r.reason and "firewall-rules list" in r.remediation
    ev.api["networkmanagement.connectivityTest"] = ok("networkmanagement.connectivityTest", connectivity_test_body(
        "UNREACHABLE", break_at="DELIVER", cause="CLOUD_SQL_INSTANCE_NOT_RUNNING"))
    r = results(ev).by_id("connector.path")
    assert "instance hop" in r.reason and r.upstream == ["cloudsql"] and "sql.state" in r.remediation


def test_connectivity_test_disabled_or_refused():
    ev = healthy_evidence()
    ev.api["networkmanagement.connectivityTest"] = failed("networkmanagement.connectivityTest", "skipped",
                                                          "connectivity.enabled is false: no Connectivity Test was run")
    r = results(ev).by_id("connector.path")
    assert r.status is Status.SKIP and r.reason == "connectivity.enabled is false: no Connectivity Test was run"
    ev.api["networkmanagement.connectivityTest"] = failed("networkmanagement.connectivityTest", "api_disabled",
                                                          "the Network Management API is not enabled")
    assert results(ev).by_id("connector.path").status is Status.SKIP
    ev.api["networkmanagement.connectivityTest"] = failed("networkmanagement.connectivityTest", "permission", "denied")
    assert results(ev).by_id("connector.path").status is Status.ERROR
