"""Secret Manager: every required secret exists with an ENABLED latest version and is not about to
expire. Metadata only: no value is read, shown or stored here."""
from __future__ import annotations

from runbook_lib.checks._util import FAIL, PASS, WARN, Maker, days_between, fmt_days, safe_id, unavailable, usable
from runbook_lib.evidence import Evidence
from runbook_lib.gcp import secretmanager
from runbook_lib.gcp.secretmanager import Secret, latest, versions_of
from runbook_lib.params import Params
from runbook_lib.results import CheckResult, Severity, Status

make = Maker("secrets", Severity.high)
LIST = secretmanager.SECRETS


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    listed = ev.api.get(LIST)
    results: list[CheckResult] = []
    if not usable(listed):
        results += [unavailable(make, _id(n), _title(n), listed, LIST) for n in params.secrets.required]
        results.append(unavailable(make, "secrets.count", "Required secrets available", listed, LIST))
        return results
    present = {s.name: s for s in secretmanager.secrets_of(listed.body)}
    results += [secret(name, present.get(name), ev, params) for name in params.secrets.required]
    results.append(count(dict(zip(params.secrets.required, results, strict=True)), params))
    return results + value_format_results(ev, params)


def _id(name: str) -> str:
    return f"secrets.{safe_id(name)}"


def _title(name: str) -> str:
    return f"Secret {name} has an enabled version"


def _create(params: Params, name: str) -> str:
    return (f'`printf %s "$VALUE" | gcloud secrets create {name} --replication-policy=automatic --data-file=- '
            f"--project {params.project}` (the value comes from the person who owns it; the runbook never invents "
            "or shows it)")


def _add_version(params: Params, name: str) -> str:
    return f"`{secretmanager.add_version(params, name).gcloud}` (value supplied by a person, never shown)"


def secret(name: str, meta: Secret | None, ev: Evidence, params: Params) -> CheckResult:
    cid, title = _id(name), _title(name)
    key = secretmanager.versions_key(name)
    expected = "exists; latest version ENABLED; not expiring soon"
    if meta is None:
        return make(cid, title, FAIL, observed="missing", expected=expected, evidence=[LIST],
                    reason=f"{name} does not exist: services that read it fail to start or misconfigure",
                    remediation=_create(params, name))
    rec = ev.api.get(key)
    if not usable(rec):
        return unavailable(make, cid, title, rec, key, expected=expected)
    newest = latest(versions_of(rec.body))
    if newest is None:
        return make(cid, title, FAIL, observed="exists, no versions", expected=expected, evidence=[LIST, key],
                    reason=f"{name} has no value yet", remediation=_add_version(params, name))
    created = f", created {newest.create_time:%Y-%m-%d}" if newest.create_time else ""
    observed = f"latest version {newest.version} {newest.state}{created}"
    if newest.state == secretmanager.DISABLED:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[LIST, key],
                    reason=f"the latest version of {name} is disabled, so reading 'latest' fails",
                    remediation=f"`{secretmanager.enable_version(params, name, newest.version).gcloud}` if that value "
                                f"is still right, or add a new version: {_add_version(params, name)}")
    if newest.state == secretmanager.DESTROYED:
        when = f" on {newest.destroy_time:%Y-%m-%d}" if newest.destroy_time else ""
        return make(cid, title, FAIL, observed=observed + when, expected=expected, evidence=[LIST, key],
                    reason=f"the latest version of {name} was destroyed{when}; its value is gone",
                    remediation=_add_version(params, name))
    if newest.state != secretmanager.ENABLED:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[LIST, key],
                    reason=f"the latest version is in state {newest.state}", remediation=_add_version(params, name))
    return _expiry(cid, title, name, meta, observed, expected, ev, params, [LIST, key])


def _expiry(cid: str, title: str, name: str, meta: Secret, observed: str, expected: str, ev: Evidence,
            params: Params, evidence: list[str]) -> CheckResult:
    expires = meta.expire_time
    if expires is None:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=evidence)
    left = days_between(expires, ev.now)
    observed += f"; secret expires {expires:%Y-%m-%d %H:%M} UTC (in {fmt_days(left)})"
    fix = f"`gcloud secrets update {name} --remove-expiration --project {params.project}` (or set a later --expire-time)"
    if left <= 0:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence,
                    reason=f"{name} has expired and is being deleted", remediation=_create(params, name))
    if left < params.secrets.expiry_warn_days:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=evidence,
                    reason=f"{name} is deleted automatically in {fmt_days(left)}", remediation=fix)
    return make(cid, title, PASS, observed=observed, expected=expected, evidence=evidence)


def count(by_name: dict[str, CheckResult], params: Params) -> CheckResult:
    cid, title = "secrets.count", "Required secrets available"
    total = len(params.secrets.required)
    ok = [n for n, r in by_name.items() if r.status in (Status.PASS, Status.WARN)]
    failed = [n for n, r in by_name.items() if r.status is Status.FAIL]
    unknown = [n for n, r in by_name.items() if n not in ok and n not in failed]
    observed = f"{len(ok)}/{total} available" + (f", {len(unknown)} unknown" if unknown else "")
    expected = f"{total}/{total} available"
    if failed:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[LIST],
                    reason=f"not available: {', '.join(failed)}"
                           + (f"; could not verify: {', '.join(unknown)}" if unknown else ""),
                    remediation="see each secrets.<name> result for its command; values come from their owners "
                                "(remediation.secret_values), never from the runbook")
    if unknown:
        return make(cid, title, Status.ERROR, observed=observed, expected=expected, evidence=[LIST],
                    reason=f"could not verify: {', '.join(unknown)} (see their results)")
    return make(cid, title, PASS, observed=observed, expected=expected, evidence=[LIST])


def value_format_results(ev: Evidence, params: Params) -> list[CheckResult]:
    """``secrets.<name>.format`` when ``secrets.inspect_values`` was on: judged from the verdicts
    recorded in memory at gather time (shapes and reasons; the evidence never holds a value)."""
    rec = ev.api.get(secretmanager.FORMATS)
    if rec is None:
        return []
    out = []
    for name, v in ((rec.body or {}).get("formats") or {}).items():
        cid, title = f"{_id(name)}.format", f"Secret {name} is well formed"
        if "error" in v:
            out.append(make(cid, title, Status.ERROR, reason=f"could not read the value: {v['reason']}",
                            evidence=[secretmanager.FORMATS]))
        elif v["ok"]:
            out.append(make(cid, title, PASS, observed=v["shape"], evidence=[secretmanager.FORMATS]))
        else:
            out.append(make(cid, title, FAIL, observed=v["shape"], reason=v["reason"], evidence=[secretmanager.FORMATS],
                            remediation=f'add a correct version: `printf %s "$VALUE" | gcloud secrets versions add {name} '
                                        f"--data-file=- --project {params.project}` (value from its owner)"))
    return out
