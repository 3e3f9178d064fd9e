"""How the suite runs on two pytest-xdist workers (``make test``: ``-n 2 --dist loadgroup``).

Groups. A worker is its own pytest session, so a fixture shared by several tests is made once per
worker that runs one of them. The tests that share an expensive one therefore get one
``xdist_group``: those of a session-wide shared run (``demo_runs``, ``replay_pair``,
``shared_sandbox``, whatever module they are in) and those of a module whose fixture is
module-scoped (one sandbox or one set of runs per module, often used in order). A test that gets
a shared fixture only for some parameters (``request.getfixturevalue``) carries the mark by hand.
Tests sharing nothing expensive go wherever a worker is free.

Priority. The sandbox runs at time scale 0.05, so its latency thresholds are a few hundred
milliseconds on the wire; a notebook run on recorded evidence beside it on the other core (kernel
start, HTML export) can push a probe past one. Tests that run notebooks on recorded evidence only
(marked ``e2e``, not ``sandbox``: nothing they check is timed) therefore run at a lower CPU
priority (``nice`` 10, inherited by their runbook, papermill and kernel processes) while the
other worker runs a sandbox; as root only (a process cannot raise its priority back otherwise).

Without xdist none of this changes anything.
"""
from __future__ import annotations

import os

import pytest

SHARED = ("demo_runs", "replay_pair", "shared_sandbox")   # session-scoped, expensive (tests/plugins)


def _expensive_keys(item: pytest.Item) -> set[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    keys = {name for name in SHARED if name in info.names_closure}
    keys |= {m.args[0] for m in item.iter_markers("xdist_group") if m.args}   # set by hand
    module = item.nodeid.split("::", 1)[0]
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name) or ()
        if name not in SHARED and any(d.scope in ("module", "package", "class") for d in defs):
            keys.add(module)
    return keys


@pytest.hookimpl(wrapper=True)   # around every other plugin's: before xdist reads the marks into the ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keyed = [(item, _expensive_keys(item)) for item in items]
    for _, keys in keyed:          # tests that share anything share a group (union of their keys)
        first, *rest = sorted(keys) or [None]
        for key in rest:
            parent[find(key)] = find(first)
    for item, keys in keyed:
        if keys:   # one name per item (xdist joins all of an item's group names into one)
            item.own_markers[:] = [m for m in item.own_markers if m.name != "xdist_group"]
            item.add_marker(pytest.mark.xdist_group(find(min(keys))))
    return (yield)


LOW_PRIORITY = 10


def _untimed(item: pytest.Item) -> bool:
    return item.get_closest_marker("e2e") is not None and item.get_closest_marker("sandbox") is None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    # the whole protocol: setup included, where the shared runs of such tests start
    lower = bool(os.environ.get("PYTEST_XDIST_WORKER")) and os.geteuid() == 0 and _untimed(item)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    if lower:
        os.setpriority(os.PRIO_PROCESS, 0, max(before, LOW_PRIORITY))
    try:
        yield
    finally:
        if lower:
            os.setpriority(os.PRIO_PROCESS, 0, before)
