"""Checks: pure functions of evidence and parameters, one module per component.

Each module has ``evaluate(ev: Evidence, params: Params) -> list[CheckResult]``. No I/O, no clock:
``now`` is ``ev.now``. ``evaluate_all`` runs them in ``COMPONENTS`` order.
"""
from __future__ import annotations

from typing import Callable

from runbook_lib.checks import certificates, clock, cloud_run, cloudsql, connector, golden_path, load_balancer, secrets
from runbook_lib.evidence import Evidence
from runbook_lib.params import Params
from runbook_lib.results import CheckResult, ResultSet, Severity, Status

Evaluator = Callable[[Evidence, Params], list[CheckResult]]

# Each module declares its component and default severity once (``make = Maker(component,
# severity)``) and its ``evaluate``; this tuple is only the order reports list them in.
# golden_path yields results only when the evidence holds golden.* records (phase 3).
MODULES = (connector, cloudsql, certificates, load_balancer, secrets, cloud_run, clock, golden_path)

COMPONENTS: tuple[str, ...] = tuple(module.make.component for module in MODULES)
EVALUATORS: dict[str, Evaluator] = {module.make.component: module.evaluate for module in MODULES}
SEVERITY: dict[str, Severity] = {module.make.component: module.make.severity for module in MODULES}


def evaluate_all(ev: Evidence, params: Params, components: tuple[str, ...] | list[str] = COMPONENTS) -> ResultSet:
    results = ResultSet()
    for name in components:
        try:
            results.extend(EVALUATORS[name](ev, params))
        except Exception as exc:  # a bug in one check must show up as an ERROR, not hide the others
            results.extend([CheckResult(
                id=f"{name}.internal", component=name, title=f"{name} checks ran", status=Status.ERROR,
                severity=SEVERITY[name], reason=f"the {name} checks crashed: {type(exc).__name__}: {exc}",
            )])
    return results
