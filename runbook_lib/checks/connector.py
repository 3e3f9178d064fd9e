"""Serverless VPC Access connector: exists, READY, sized, on the right network, used, not saturated."""
from __future__ import annotations

from collections import Counter

from runbook_lib.checks._util import FAIL, PASS, SKIP, WARN, Maker, percentile, unavailable, usable
from runbook_lib.evidence import Evidence
from runbook_lib.gcp import networkmanagement, run, vpcaccess
from runbook_lib.gcp.metrics import latest_total, peak
from runbook_lib.gcp.networkmanagement import ConnectivityTest
from runbook_lib.gcp.vpcaccess import Connector
from runbook_lib.params import Params
from runbook_lib.probes.base import PHASES, ProbeResult
from runbook_lib.results import CheckResult, Severity

KEY = vpcaccess.KEY
METRIC = "monitoring.connector_instances"
make = Maker("connector", Severity.critical)

TITLES = {
    "connector.exists": "Connector exists",
    "connector.state": "Connector is READY",
    "connector.instances": "Connector min/max instances",
    "connector.network": "Connector is on the VPC network",
    "connector.ip_range": "Connector IP range",
    "connector.attachment": "Cloud Run services egress through the connector",
    "connector.saturation": "Connector is not saturated",
}
PATH = networkmanagement.KEY
PROBE = "postgres.connect"


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    rec = ev.api.get(KEY)
    name = params.connector.name
    if rec is not None and not rec.ok and rec.error and rec.error.kind == "not_found":
        missing = f"connector {name} does not exist (see connector.exists)"
        return [_missing(params)] + [
            make(cid, title, SKIP, reason=missing, evidence=[KEY]) for cid, title in TITLES.items() if cid != "connector.exists"
        ]
    if not usable(rec):
        own = [unavailable(make, cid, TITLES[cid], rec, KEY) for cid in list(TITLES)[:5]]
        return own + [attachment(ev, params), saturation(ev, params, None), path(ev, params)]
    conn = Connector.from_json(rec.body)
    return [
        make("connector.exists", TITLES["connector.exists"], PASS, observed=rec.body.get("name", name),
             expected=f"connector {name} in {params.region}", evidence=[KEY]),
        state(conn, params), instances(conn, params), network(conn, params), ip_range(conn, params),
        attachment(ev, params), saturation(ev, params, conn), path(ev, params),
    ]


def _recreate(params: Params) -> str:
    return (f"delete it, then create it again: `{vpcaccess.delete_connector(params).gcloud}`; "
            f"`{vpcaccess.create_connector(params).gcloud}`")


def _missing(params: Params) -> CheckResult:
    c = params.connector
    return make("connector.exists", TITLES["connector.exists"], FAIL, observed="not found",
                expected=f"connector {c.name} in {params.region}",
                reason=f"the API answered 404 for connector {c.name} in {params.project}/{params.region}: "
                       "Cloud Run services that use it cannot reach the VPC (or the database)",
                remediation=f"create it: `{vpcaccess.create_connector(params).gcloud}`", evidence=[KEY])


def state(conn: Connector, params: Params) -> CheckResult:
    title, cid = TITLES["connector.state"], "connector.state"
    expected = "READY"
    if conn.is_ready:
        return make(cid, title, PASS, observed=conn.state, expected=expected, evidence=[KEY])
    if conn.state in vpcaccess.TRANSIENT_STATES:
        return make(cid, title, WARN, observed=conn.state, expected=expected, evidence=[KEY],
                    reason=f"an operation is in progress ({conn.state.lower()}): wait a few minutes and re-run")
    if conn.state == vpcaccess.DELETING:
        return make(cid, title, FAIL, observed=conn.state, expected=expected, evidence=[KEY],
                    reason="the connector is being deleted; services using it lose VPC access",
                    remediation=f"wait for the delete to finish, then `{vpcaccess.create_connector(params).gcloud}`")
    return make(cid, title, FAIL, observed=conn.state, expected=expected, evidence=[KEY],
                reason=f"the connector is in state {conn.state}; Google recommends deleting a connector in ERROR",
                remediation=_recreate(params))


def instances(conn: Connector, params: Params) -> CheckResult:
    title, cid = TITLES["connector.instances"], "connector.instances"
    want_min, want_max = params.connector.min_instances, params.connector.max_instances
    lo, hi = conn.min_instances, conn.max_instances
    observed = f"min {lo if lo is not None else 'not set'}, max {hi if hi is not None else 'not set'} instances"
    expected = f"min >= {want_min}, max >= {want_max}"
    short = []
    if lo is None or lo < want_min:
        short.append(f"min {lo} < {want_min}" if lo is not None else "min not set")
    if hi is None or hi < want_max:
        short.append(f"max {hi} < {want_max}" if hi is not None else "max not set")
    if not short:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY])
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[KEY],
                reason=f"under capacity ({'; '.join(short)}): under load the connector cannot scale out "
                       "and connections to the database queue or time out",
                remediation=f"`{vpcaccess.update_instances(params).gcloud}`")


def network(conn: Connector, params: Params) -> CheckResult:
    title, cid = TITLES["connector.network"], "connector.network"
    want = params.connector.network
    if conn.network == want:
        return make(cid, title, PASS, observed=conn.network, expected=want, evidence=[KEY])
    if not conn.network and conn.subnet:
        return make(cid, title, WARN, observed=f"subnet {conn.subnet} (network not reported)", expected=want,
                    evidence=[KEY], reason=f"the connector was created from subnet {conn.subnet}; verify it is on {want}: "
                    f"`gcloud compute networks subnets describe {conn.subnet} --region {params.region} --project {params.project}`")
    return make(cid, title, FAIL, observed=conn.network or "not set", expected=want, evidence=[KEY],
                reason=f"the connector is on network {conn.network or '(none)'}, not {want}: "
                       "the database's private IP is unreachable through it",
                remediation=f"a connector's network cannot change: {_recreate(params)}")


def ip_range(conn: Connector, params: Params) -> CheckResult:
    title, cid = TITLES["connector.ip_range"], "connector.ip_range"
    want = params.connector.ip_cidr_range
    if conn.ip_cidr_range == want:
        return make(cid, title, PASS, observed=want, expected=want, evidence=[KEY])
    if not conn.ip_cidr_range and conn.subnet and conn.subnet == params.connector.subnet:
        return make(cid, title, PASS, observed=f"subnet {conn.subnet}", expected=f"subnet {conn.subnet}", evidence=[KEY])
    return make(cid, title, FAIL, observed=conn.ip_cidr_range or f"subnet {conn.subnet or '(none)'}", expected=want,
                evidence=[KEY], reason=f"the connector's range differs from {want} (configuration drift)",
                remediation=f"the range cannot change in place: {_recreate(params)}; "
                            "or set connector.ip_cidr_range to the range in use")


def attachment(ev: Evidence, params: Params) -> CheckResult:
    cid, title = "connector.attachment", TITLES["connector.attachment"]
    rec = ev.api.get(run.KEY)
    want = f"every service in {params.cloud_run.services} uses {params.connector.name} with egress {params.cloud_run.vpc_egress}"
    if not usable(rec):
        return unavailable(make, cid, title, rec, run.KEY, expected=want)
    services = run.services_of(rec.body)
    present = [s for s in params.cloud_run.services if s in services]
    if not present:
        return make(cid, title, SKIP, expected=want, evidence=[run.KEY],
                    reason="none of the configured Cloud Run services exist (see run.*.exists)")
    wrong = []
    for name in present:
        svc = services[name]
        if svc.vpc_connector != params.connector.name:
            wrong.append((name, f"connector {svc.vpc_connector or 'none'}"))
        elif svc.vpc_egress != params.cloud_run.vpc_egress:
            wrong.append((name, f"egress {svc.vpc_egress or 'unset'}"))
    absent = [s for s in params.cloud_run.services if s not in services]
    note = f"; not deployed: {', '.join(absent)}" if absent else ""
    if not wrong:
        return make(cid, title, PASS, observed=f"{len(present)}/{len(present)} services attached{note}",
                    expected=want, evidence=[run.KEY])
    return make(cid, title, FAIL, expected=want, evidence=[run.KEY],
                observed="; ".join(f"{n}: {why}" for n, why in wrong) + note,
                reason="these services do not send their traffic through the connector, so they cannot reach "
                       "the database's private IP",
                remediation="; ".join(f"`{run.update_vpc_gcloud(params, n)}`" for n, _ in wrong))


def saturation(ev: Evidence, params: Params, conn: Connector | None) -> CheckResult:
    cid, title = "connector.saturation", TITLES["connector.saturation"]
    rec = ev.metrics.get(METRIC)
    ceiling = (conn.max_instances if conn and conn.max_instances else None) or params.connector.max_instances
    expected = f"fewer than max {ceiling} instances running"
    if not usable(rec):
        return unavailable(make, cid, title, rec, METRIC, expected=expected)
    now_total, top = latest_total(rec), peak(rec)
    if now_total is None or top is None:
        return make(cid, title, SKIP, expected=expected, evidence=[METRIC],
                    reason=f"Cloud Monitoring has no {rec.metric_type} data for {params.connector.name} in the last "
                           f"{params.monitoring.lookback_minutes} min (an idle or new connector reports none)")
    latest, at = now_total
    highest, peak_at = top
    observed = (f"{latest:g} instances at {at:%H:%M} UTC (peak {highest:g} at {peak_at:%H:%M}), "
                f"max {ceiling}")
    numbers = {"instances": float(latest), "peak": float(highest), "max_instances": float(ceiling)}
    if latest >= ceiling:
        if ceiling < params.connector.max_instances:
            fix = f"`{vpcaccess.update_instances(params).gcloud}`"
        else:
            fix = (f"the connector is at its ceiling of {ceiling} instances; use a larger machine type: "
                   f"`gcloud compute networks vpc-access connectors update {params.connector.name} --region "
                   f"{params.region} --machine-type e2-standard-4 --project {params.project}`")
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[METRIC, KEY], measurements=numbers,
                    reason="saturated: every instance the connector may run is running, so new connections "
                           "to the VPC wait (database timeouts follow)", remediation=fix)
    if highest >= ceiling:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=[METRIC, KEY], measurements=numbers,
                    reason=f"the connector hit its maximum at {peak_at:%H:%M} UTC within the last "
                           f"{params.monitoring.lookback_minutes} min; it may saturate again under load")
    return make(cid, title, PASS, observed=observed, expected=expected, evidence=[METRIC], measurements=numbers)



# -- the path, hop by hop (Network Management Connectivity Test) ------------------------------------

def probe_timings(samples: list[ProbeResult]) -> str:
    """The live database probe's phases beside the analysis: median per phase, where timeouts waited."""
    if not samples:
        return "no live probe samples"
    attempted = [s for s in samples if s.info.get("attempted", True)]
    phases = ", ".join(f"{name} {percentile([s.phases.get(name, 0.0) for s in attempted], 50):.3f} s"
                       for name in PHASES["postgres"] if attempted)
    stuck = Counter(s.info.get("waiting_for", "?") for s in attempted if not s.ok and s.reason and s.reason.value == "timeout")
    where = "; timed out during " + ", ".join(f"{phase} ({n})" for phase, n in stuck.most_common()) if stuck else ""
    failed = sum(not s.ok for s in samples)
    return f"probe p50 {phases or '-'}; {failed}/{len(samples)} failed{where}"


def _hop_advice(hop: str, params: Params) -> tuple[str, list[str]]:
    """``(remediation, upstream components)`` for the hop where the path breaks."""
    c, where = params.connector, f"--project {params.project}"
    return {
        "connector": (f"the connector drops the traffic: fix the connector.* results (`gcloud compute networks "
                      f"vpc-access connectors describe {c.name} --region {params.region} {where}`)", []),
        "firewall": (f"a firewall rule blocks TCP {params.cloudsql.port}: allow egress from the connector's range "
                     f"{c.ip_cidr_range} to the instance's private range (`gcloud compute firewall-rules list "
                     f"--filter=network:{c.network} {where}`)", []),
        "route": (f"no route to the instance's private IP: check private services access on {c.network} "
                  f"(`gcloud services vpc-peerings list --network={c.network} {where}`) and the routes "
                  f"(`gcloud compute routes list --filter=network:{c.network} {where}`)", []),
        "instance": (f"the instance does not accept the traffic: see sql.state and sql.private_ip "
                     f"(`gcloud sql instances describe {params.cloudsql.instance} {where}`)", ["cloudsql"]),
        "source": ("the Cloud Run revision cannot send into the VPC: see run.<service>.ready and run.<service>.vpc "
                   "(a revision without a connector, or not Ready)", ["cloud_run"]),
    }.get(hop, (f"see the trace: `gcloud network-management connectivity-tests describe TEST {where}` "
                "(the runbook deletes its test; create one with the same source and destination)", []))


def path(ev: Evidence, params: Params) -> CheckResult:
    cid, title = "connector.path", "Cloud Run reaches Cloud SQL through the connector, hop by hop"
    dest = f"{params.cloudsql.instance}:{networkmanagement.POSTGRES_PORT}"
    expected = f"Connectivity Test REACHABLE to {dest}"
    rec = ev.api.get(PATH)
    timings = probe_timings(ev.probes.get(PROBE) or [])
    if not usable(rec):
        return unavailable(make, cid, title, rec, PATH, expected=expected)
    test = ConnectivityTest.from_json(rec.body)
    hops = " -> ".join(s.short() for s in (test.traces[0] if test.traces else []))
    observed = f"{test.result} from {test.source or '?'} to {test.destination or dest}: {hops or 'no trace'}; {timings}"
    evidence = [PATH, PROBE]
    if test.result == networkmanagement.REACHABLE:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=evidence)
    failure = test.first_failure()
    if test.result == networkmanagement.UNREACHABLE and failure is not None:
        culprit, final = failure
        cause = final.cause if final is not None and final.cause else culprit.cause
        # the drop cause names the hop more precisely than the step it was found at (a route step
        # may drop for CLOUD_SQL_INSTANCE_NOT_RUNNING): the cause wins when it names one
        by_cause = final.hop if final is not None and final.hop not in ("drop", "abort") else ""
        hop = by_cause or (culprit.hop if culprit.hop not in ("drop", "abort", "other") else "other")
        advice, upstream = _hop_advice(hop, params)
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence, upstream=upstream,
                    reason=(f"the path breaks at the {hop} hop: {culprit.label()}"
                            + (f", cause {cause}" if cause and cause not in culprit.label() else "")
                            + (f" ({culprit.description})" if culprit.description else "")),
                    remediation=advice)
    why = test.error or (f"{failure[0].label()}" if failure else "the analysis reached no verdict")
    return make(cid, title, WARN, observed=observed, expected=expected, evidence=evidence, severity=Severity.medium,
                reason=f"the Connectivity Test is {test.result}: {why}",
                remediation=("re-run; if it stays so, describe a test with the same source and destination: "
                             f"`gcloud network-management connectivity-tests list --project {params.project}`"))
