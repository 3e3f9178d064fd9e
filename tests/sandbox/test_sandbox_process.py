"""The sandbox process end to end: ``up`` issue-1278, see the faults with ordinary clients, fix
them through the REST APIs as a person would, see the same clients succeed, ``down`` leaves
nothing behind."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from runbook_lib.errors import EnvironmentError_
from runbook_lib.sandbox import manager
from runbook_lib.sandbox.manager import RunningSandbox

pytestmark = pytest.mark.sandbox


class ConnectToHTTPS(http.client.HTTPSConnection):
    """HTTPS to ``host`` (SNI, Host header, certificate check) over a socket to ``addr``,
    like ``curl --connect-to``."""

    def __init__(self, host: str, addr: tuple[str, int], context: ssl.SSLContext):
        super().__init__(host, 443, context=context, timeout=5)
        self._addr, self._ctx = addr, context

    def connect(self) -> None:
        raw = socket.create_connection(self._addr, timeout=5)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)


def https_get(sb: RunningSandbox, domain: str, path: str) -> tuple[int, dict[str, Any]]:
    target = sb.params.network.connect_to[f"{domain}:443"]
    host, port = target.rsplit(":", 1)
    conn = ConnectToHTTPS(domain, (host, int(port)), ssl.create_default_context(cafile=sb.params.network.ca_bundle))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def db_connect(sb: RunningSandbox) -> psycopg.Connection[Any]:
    p = sb.params.cloudsql
    password = Path(p.password_file).read_text().strip()  # type: ignore[arg-type]
    return psycopg.connect(host=p.host, port=p.port, user=p.user, password=password, dbname=p.database,
                           sslmode=p.sslmode, connect_timeout=2)


def test_issue_1278_seen_fixed_and_gone(sandbox: RunningSandbox) -> None:
    sb, params = sandbox, sandbox.params
    api = httpx.Client(timeout=5.0)
    url = {name: str(getattr(params.endpoints, name)) for name in
           ("vpcaccess", "sqladmin", "compute", "secretmanager", "run")}
    P, R = params.project, params.region
    compute = f"{url['compute']}/compute/v1/projects/{P}/global"
    secrets_url = f"{url['secretmanager']}/v1/projects/{P}/secrets"
    front, api_domain = params.domains.frontend, params.domains.api

    # --- the parameters file written by `up` targets the sandbox, with no secret in it ---------
    assert params.target.mode == "sandbox" and params.endpoints.credentials == "anonymous"
    state_text = (sb.workdir / "state.json").read_text()
    shared = state_text + sb.params_file.read_text() + (sb.workdir / "sandbox.log").read_text()
    for secret_file in ("db-password", "golden-password"):
        assert (sb.workdir / secret_file).stat().st_mode & 0o777 == 0o600
        assert (sb.workdir / secret_file).read_text().strip() not in shared
    for line in (sb.workdir / "secret-values.env").read_text().splitlines():
        assert line.split("=", 1)[1] not in shared

    with pytest.raises(EnvironmentError_, match="already running"):
        manager.up(sb.workdir.parent / "sandbox.yaml", "healthy", sb.workdir)

    # --- the faults, as ordinary clients see them ----------------------------------------------
    with pytest.raises(psycopg.OperationalError):
        db_connect(sb).close()
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        https_get(sb, api_domain, "/health")
    assert err.value.verify_code == 62  # hostname mismatch
    listed = {s["name"].rsplit("/", 1)[-1] for s in api.get(secrets_url).json()["secrets"]}
    missing = sorted(set(params.secrets.required) - listed)
    assert len(missing) == 3

    # --- the fixes, through the APIs, each waited for as its operation says --------------------
    def wait(op_url: str, done: Any) -> dict[str, Any]:
        deadline, pause = time.monotonic() + 20, 0.05
        while True:
            op = api.get(op_url).json()
            if done(op):
                return op
            assert time.monotonic() < deadline, f"operation never finished: {op}"
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    connector = f"{url['vpcaccess']}/v1/projects/{P}/locations/{R}/connectors/{params.connector.name}"
    op = api.patch(connector, params={"updateMask": "minInstances,maxInstances"},
                   json={"minInstances": 2, "maxInstances": 10}).json()
    assert "done" not in op  # a google.longrunning.Operation omits done until it is
    assert wait(f"{url['vpcaccess']}/v1/{op['name']}", lambda o: o.get("done"))["response"]["maxInstances"] == 10
    instance = f"{url['sqladmin']}/v1/projects/{P}/instances/{params.cloudsql.instance}"
    op = api.patch(instance, json={"settings": {"activationPolicy": "ALWAYS"}}).json()
    assert op["status"] in ("PENDING", "RUNNING")
    wait(f"{url['sqladmin']}/v1/projects/{P}/operations/{op['name']}", lambda o: o["status"] == "DONE")
    cert_op = api.post(f"{compute}/sslCertificates", json={
        "name": params.load_balancer.certificate_name, "type": "MANAGED", "managed": {"domains": [front, api_domain]},
    }).json()
    wait(cert_op["selfLink"].replace("https://www.googleapis.com", url["compute"]), lambda o: o["status"] == "DONE")
    proxy_name = params.load_balancer.https_proxy
    current = api.get(f"{compute}/targetHttpsProxies/{proxy_name}").json()["sslCertificates"]
    attach = api.post(f"{url['compute']}/compute/v1/projects/{P}/targetHttpsProxies/{proxy_name}/setSslCertificates",
                      json={"sslCertificates": current + [cert_op["targetLink"]]}).json()  # beside, not instead
    wait(attach["selfLink"].replace("https://www.googleapis.com", url["compute"]), lambda o: o["status"] == "DONE")
    run = f"{url['run']}/v2/projects/{P}/locations/{R}/services"
    served = [neg["cloudRun"]["service"] for neg in api.get(
        f"{url['compute']}/compute/v1/projects/{P}/aggregated/networkEndpointGroups").json()["items"][
        f"regions/{R}"]["networkEndpointGroups"]]
    for svc in served:
        service = api.get(f"{run}/{svc}").json()
        template = service["template"]
        template["timeout"] = "3600s"
        template["containers"][0]["resources"]["startupCpuBoost"] = True
        template.setdefault("scaling", {})["minInstanceCount"] = 1
        op = api.patch(f"{run}/{svc}", json={"template": template, "traffic": service["traffic"]}).json()
        done = wait(f"{url['run']}/v2/{op['name']}", lambda o: o.get("done"))
        assert "error" not in done and done["response"]["latestReadyRevision"] != service["latestReadyRevision"]
    values = dict(line.split("=", 1) for line in
                  Path(params.remediation.secret_values.file).read_text().splitlines())  # type: ignore[arg-type]
    broken = json.loads(api.get(f"{url['compute']}/_sandbox/state").text)["dataplane"]["secret_problems"]
    for name in broken:
        if name in missing:
            api.post(secrets_url, params={"secretId": name},
                     json={"replication": {"automatic": {}}}).raise_for_status()
        api.post(f"{secrets_url}/{name}:addVersion",
                 json={"payload": {"data": base64.b64encode(values[name].encode()).decode()}}).raise_for_status()

    # --- the certificate provisions (60 s real world, 1.2 s here) ---------------------------------
    deadline = time.monotonic() + 30
    cert_url = f"{compute}/sslCertificates/{params.load_balancer.certificate_name}"
    while api.get(cert_url).json()["managed"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "the managed certificate never turned ACTIVE"
        time.sleep(0.25)

    # --- the same clients succeed ---------------------------------------------------------------
    with db_connect(sb) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert https_get(sb, api_domain, "/health") == (200, {"status": "ok", "service": "backend"})
    assert https_get(sb, front, "/auth/health")[0] == 200
    listed = {s["name"].rsplit("/", 1)[-1] for s in api.get(secrets_url).json()["secrets"]}
    assert listed == set(params.secrets.required)
    dataplane = api.get(f"{url['compute']}/_sandbox/state").json()["dataplane"]
    assert dataplane["ws_lifetime_s"] == pytest.approx(3600 * params.target.time_scale)  # the revision's timeout
    log = api.get(f"{url['compute']}/_sandbox/requests").json()["requests"]
    assert [e for e in log if e["method_id"] is None] == []  # every request was a discovery method
    assert api.get(f"{url['compute']}/_sandbox/schema-problems").json() == {"validating": True, "problems": []}
    mutations = [e for e in log if e["mutating"]]
    assert len(mutations) == 2 + 2 + len(served) + len(missing) + len(broken)
    api.close()

    # --- down leaves no process -------------------------------------------------------------------
    info = manager.status(sb.workdir)
    assert info["running"] and info["dataplane"]["proxy_policy"]["mode"] == "pass"
    serve_pid = info["pid"]
    group = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == serve_pid]
    assert any("postgres" in " ".join(_cmdline(p)) for p in group)
    manager.down(sb.workdir)
    assert not psutil.pid_exists(serve_pid) or psutil.Process(serve_pid).status() == psutil.STATUS_ZOMBIE
    assert [p.pid for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == serve_pid] == []
    assert not manager.status(sb.workdir)["running"]
    assert not (sb.workdir / "db-password").exists() and not (sb.workdir / "state.json").exists()


def _pgid(pid: int) -> int | None:
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
        return os.getpgid(pid)
    except (psutil.Error, OSError):
        return None


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def test_up_rejects_an_unknown_scenario_before_spawning(tmp_path: Path) -> None:
    from runbook_lib.errors import ScenarioError
    from runbook_lib.params import dump_params

    from .kit import sandbox_params

    source = tmp_path / "sandbox.yaml"
    source.write_text(dump_params(sandbox_params("healthy")))
    with pytest.raises(ScenarioError, match="unknown scenario, expected one of: "):
        manager.up(source, "no-such-scenario", tmp_path / "wd")
    assert not (tmp_path / "wd" / "serve.pid").exists()


def test_status_and_down_without_a_sandbox(tmp_path: Path) -> None:
    import subprocess

    assert manager.status(tmp_path) == {"workdir": str(tmp_path.resolve()), "running": False, "pid": None}
    manager.down(tmp_path)  # nothing to stop is not an error
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (tmp_path / manager.PID_FILE).write_text(f"{bystander.pid}\n")  # a stale pid, reused by another program
        assert manager.status(tmp_path)["running"] is False
        manager.down(tmp_path)
        assert bystander.poll() is None  # not signalled: it is not a sandbox
    finally:
        bystander.kill()
        bystander.wait(5)
