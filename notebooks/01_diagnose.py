# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# A Network Management **Connectivity Test** (`connector.path`) follows the path from the Cloud Run
# revision to Cloud SQL on 5432 as Google analyses it, and names the hop where it breaks (route,
# firewall, connector, instance), beside the live probe's phase timings.
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
# The instance must be `RUNNABLE` with activation policy `ALWAYS` (a *stopped* instance is reported by
# Google as `RUNNABLE` with policy `NEVER`; read replicas have no policy), have a private IP on the
# VPC, require SSL, and accept connections in **under 35 s**. The probe opens N real connections
# (TCP, TLS, authentication, first query — each phase timed) and records where it ran from: a
# private address this machine cannot route to is *not measurable from this host* (run the runbook
# inside the VPC, e.g. as a Cloud Run job on the connector, with `network.vantage: inside_vpc`),
# never blamed on the connector.
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
# `FAILED_NOT_VISIBLE` means DNS does not point at the load balancer yet. Phase 2 adds the managed
# certificate *beside* the current one, which keeps being served until the new one is `ACTIVE` (it
# provisions only once attached and DNS points at the load balancer, up to an hour); the old one is
# removed only when the live TLS probe sees the managed one on both domains.

# %%
phase.show("certificates")

# %%
phase.served_certificates()

# %% [markdown]
# ## Load balancer — high
#
# Cloud Run sits behind **serverless NEGs**. Google takes no health check and no backend timeout on
# such a backend service ("A backend service cannot have a healthcheck with Serverless network
# endpoint group backends"), so this step checks that each backend is a `SERVERLESS` NEG in the
# region naming an existing Cloud Run service, and that nothing Google would refuse is attached. How
# long a request or WebSocket may live, and whether a slow-starting revision gets traffic, is decided
# by the Cloud Run revision (next-but-one section). For instance-group backends the health checks
# (interval × unhealthy threshold ≥ startup) and the backend timeout (≥ 600 s) apply. Health
# endpoints must answer 200 within 10 s.
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
# connector, and no environment value still points at a deprecated domain (read from the values'
# *shapes*: no value is archived). The revision decides what the incident blamed on the load
# balancer: its **request timeout** (600 s for 10-minute WebSockets, at most 3600 s), its **startup
# probe** (Google caps failureThreshold × periodSeconds at 240 s and initialDelaySeconds at 240 s: a
# 600 s start cannot be waited for, so **startup CPU boost** and **min instances** — warm instances
# keep serving while new ones start — decide instead).

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
# ## Since the last run
#
# What changed since the previous completed run of this target: newly failing, fixed, still
# failing (since which run), and numbers that moved beyond noise, from the reports folder's catalog.

# %%
rb.since_last_run(phase)

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
