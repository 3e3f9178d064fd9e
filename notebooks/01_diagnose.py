# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Phase 1 — Validation & diagnosis
#
# **What this answers:** which parts of the staging environment are broken, how badly, and what
# to do about each. It reads the control plane (VPC connector, Cloud SQL, load balancer,
# certificates, secrets, Cloud Run), probes the data plane (DNS, TCP, TLS, HTTPS, PostgreSQL) and
# reads Cloud Monitoring, **all at once**, each call with its own deadline: a dead network costs one
# deadline, not the sum of them.


# %% tags=["parameters"]
params_file = "../parameters/replay.yaml"
overrides = {}
report_dir = None

# %%
import runbook_lib as rb

phase = rb.Phase("diagnose", params_file, overrides, report_dir)
phase.run()

# %% tags=["nbval-check-output"]
phase.print_verdict()

# %% [markdown]
# ## What to do now
#
# The components broken in their own right, most severe first, each with its fix (the exact
# command Phase 2 would run). Symptoms elsewhere that a root cause explains (a slow database behind
# a saturated connector) are listed under it: fix the cause, then re-check.

# %%
phase.what_to_do()

# %% [markdown]
# ## VPC connector — critical
#
# Cloud Run reaches the database only through the Serverless VPC Access connector. It must be
# `READY`, sized **min 2 / max 10** instances, on the right network and /28 range, and not pinned at
# its maximum (saturation shows as slow or timed-out database connections). The plot draws the
# max the connector is configured with (the ceiling it is pinned at) and the max required.
#
# **If it fails:** `CREATING`/`UPDATING` — wait and re-run. Wrong size — raise min/max
# (`gcloud compute networks vpc-access connectors update`). Missing or `ERROR` — recreate it
# (Phase 2 plans the exact command). Saturated — raise max instances.

# %%
phase.show("connector")

# %%
phase.plot("monitoring", panels=["monitoring.connector_instances"])

# %% [markdown]
# ## Cloud SQL — critical
#
# The instance must be `RUNNABLE` with activation policy `ALWAYS`, have a private IP on the VPC,
# require SSL, and accept connections in **under 35 s**. The probe opens N real connections
# (TCP, TLS, authentication, first query — each phase timed) through the connector's path.
#
# **If it fails:** not running — restart / set `--activation-policy=ALWAYS`; slow or timing out
# while the connector is also failing — fix the connector first (its root cause lists such symptoms);
# connection limit — raise `max_connections`; long queries — set `statement_timeout`/`lock_timeout`.

# %%
phase.show("cloudsql")

# %%
phase.plot("db_latency")

# %% [markdown]
# ## SSL certificates — critical
#
# For each domain: DNS resolves, TCP connects, the TLS handshake completes, the chain verifies, the
# certificate **names the domain**, and it is not about to expire. Then the control plane: a
# Google-managed certificate covering both domains is `ACTIVE` and attached to the target HTTPS proxy.
#
# **If it fails:** a hostname mismatch means the proxy still serves an old certificate (e.g. the
# deprecated `*.staging.` names) — create a managed certificate for both domains and attach it.
# `FAILED_NOT_VISIBLE` means DNS does not point at the load balancer yet.

# %%
phase.show("certificates")

# %%
phase.served_certificates()

# %% [markdown]
# ## Load balancer — high
#
# Services take up to 600 s to start. Serverless backends (Cloud Run behind a serverless NEG) have
# no health check or backend timeout of their own; instance-group backends need health checks that
# tolerate the startup and a backend timeout of at least 600 s (it also caps how long a WebSocket
# can live). Health endpoints must answer 200 within 10 s.
#
# **If it fails:** Phase 2 plans the fixes. A health endpoint that fails only because of TLS is a
# certificate problem (see above).

# %%
phase.show("load_balancer")

# %%
phase.plot("http_phases")

# %% [markdown]
# ## Secret Manager — high
#
# All required secrets must exist with an **enabled latest version**. Only metadata is read:
# the runbook never reads secret values unless `secrets.inspect_values: true`, and even then only a
# format verdict is kept.
#
# **If it fails:** a person supplies the value (Phase 2 lists the exact steps); a disabled version
# needs enabling or a new version.

# %%
phase.show("secrets")

# %% [markdown]
# ## Cloud Run services
#
# Each service exists, its latest revision is ready and serving, it sends all egress through the
# connector, and no environment value still points at a deprecated domain.

# %%
phase.show("cloud_run")

# %% [markdown]
# ## Cloud Monitoring
#
# Database connections and latency percentiles over the lookback window the parameters set
# (`monitoring.lookback_minutes`, stated in the plot's title). An empty panel says why.

# %%
phase.plot("monitoring", panels=["monitoring.sql_backends", "monitoring.lb_latency_p95", "monitoring.run_latency_p95"])

# %% [markdown]
# ## Other checks
#
# Components that have no section of their own in this notebook (yet), so that no result is left
# out of the page.

# %%
phase.show_others()

# %% [markdown]
# ## Evidence
#
# Every API response, probe sample and metric series of this phase, redacted, in the report
# folder. Replaying that folder (`parameters/replay.yaml`) gives exactly these results.

# %%
phase.evidence_links()

# %% [markdown]
# ## Re-run one probe
#
# After a fix, or to watch a flapping dependency, run a single probe again without gathering
# everything: set `probe_key` to any key of `phase.evidence.probes` (`postgres.connect`,
# `tls.api-staging.netrasystems.ai`, `http.api-staging.netrasystems.ai/health`, or any key listed under Evidence above) and re-run the
# cell. A replay target shows what was recorded instead.

# %%
probe_key = "postgres.connect"
phase.probe_again(probe_key)

# %% [markdown]
# ## How to use this notebook
#
# **How to use it:** run all cells. To look at another environment, change `params_file` below
# (`../parameters/staging.yaml` for live GCP with Application Default Credentials,
# `../.sandbox/params.yaml` after `runbook sandbox up`, `../parameters/replay.yaml` for recorded
# evidence) or put single values in `overrides`, e.g. `{"cloudsql.probe_samples": 30}`, then
# **re-run only the cell after the parameters**: it gathers again and refreshes every table and
# plot below it in place. Secret *values* are never read unless `secrets.inspect_values` is true,
# and never shown.
