"""Names vulture reports as unused but that are used where it cannot see (read by `make lint`,
never imported). Only real false positives: dead code is deleted, not listed here.
Pydantic validators and ``model_config`` are covered in [tool.vulture] (ignore_decorators, ignore_names).
"""
# ruff: noqa
# fmt: off

# Python calls a module's __getattr__ for missing attributes: runbook_lib/__init__.py's lazy
# facade (rb.Phase, rb.show ...).
__getattr__

# IPython's rich display protocol (runbook_lib/history: a history table shows as HTML in a notebook).
_._repr_html_

# Fields of the per-target record fleet/execute.py writes to targets/<name>.json through asdict().
_.started_at
_.finished_at

# traitlets options nbconvert's exporter reads (runbook_lib/render/html.py).
_.exclude_input
_.exclude_input_prompt
_.exclude_output_prompt

# aiohttp's Response.content_length setter writes the Content-Length header (sandbox/emulator.py).
_.content_length

# Each product's method table, collected through cls.__dict__["HANDLERS"] (sandbox/state/__init__.py).
HANDLERS

# Read by the tests only: the sandbox's test hooks and the results lookup they assert through.
_.by_id             # ResultSet.by_id (tests/checks, tests/e2e, ...)
_.control_url       # Sandbox.control_url: the emulator's /_sandbox hooks (tests/hardening, tests/e2e)
_.stats             # FaultProxy.stats (tests/sandbox/test_faultproxy.py)
_.updated           # history SyncReport.updated (tests/history/test_catalog.py)
_.since_dir         # history Change.since_dir: which run a streak started in (tests/history)
registered          # remediate.kinds.registered(): every action the playbook builds has a kind (tests/remediate)
_.dump              # history Catalog.dump: "the same content" after a rebuild (tests/history)
_.accepted_at       # ConnectionRecord timings and byte counts (tests/sandbox/test_faultproxy.py)
_.admitted_at
_.closed_at
_.bytes_up
_.bytes_down

# Typed views of recorded Google responses that the parser tests read (tests/gcp): the view is the
# documented shape, kept whole even where the runbook reads only part of it today.
ForwardingRule      # compute.ForwardingRule (tests/gcp/test_gcp_parsers.py, test_gcp_gather.py)
_.port_range
_.unhealthy         # BackendHealth.unhealthy
_.etag              # run.Service.etag
traffic_to          # run.traffic_to: the rollback body (tests/e2e/test_cloud_run_remediation.py)
