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
#
# **How to use it:** run all cells. To look at another environment, change `params_file` below
# (`../parameters/staging.yaml` for live GCP with Application Default Credentials,
# `../.sandbox/params.yaml` after `runbook sandbox up`, `../parameters/replay.yaml` for recorded
# evidence) or put single values in `overrides`, e.g. `{"cloudsql.probe_samples": 30}`.
# Secret *values* are never read unless `secrets.inspect_values` is true, and never shown.

# %% tags=["parameters"]
params_file = "../parameters/replay.yaml"
overrides = {}
report_dir = None

# %%
import runbook_lib as rb

phase = rb.Phase("diagnose", params_file, overrides, report_dir)
phase.params.target

# %% [markdown]
# ## 1. Gather the evidence
#
# Every API response, probe sample and metric series lands in `evidence/diagnose/` of the report
# (redacted). Replaying that folder gives exactly these results. If this step reports errors, the
# checks below say which ones and why (a missing IAM role, a disabled API, a timeout).

# %%
evidence = phase.gather()
results = phase.evaluate(evidence)
rb.tables.component_summary(results)

# %% [markdown]
# ## 2. VPC connector — critical
#
# Cloud Run reaches the database only through the Serverless VPC Access connector. It must be
# `READY`, sized **min 2 / max 10** instances, on the right network and /28 range, and not pinned at
# its maximum (saturation shows as slow or timed-out database connections).
#
# **If it fails:** `CREATING`/`UPDATING` — wait and re-run. Wrong size — raise min/max
# (`gcloud compute networks vpc-access connectors update`). Missing or `ERROR` — recreate it
# (Phase 2 plans the exact command). Saturated — raise max instances.

# %%
rb.show(results, "connector")

# %% [markdown]
# ## 3. Cloud SQL — critical
#
# The instance must be `RUNNABLE` with activation policy `ALWAYS`, have a private IP on the VPC,
# require SSL, and accept connections in **under 35 s**. The probe opens N real connections
# (TCP, TLS, authentication, first query — each phase timed) through the connector's path.
#
# **If it fails:** not running — restart / set `--activation-policy=ALWAYS`; slow or timing out
# while the connector is also failing — fix the connector first (the table marks such symptoms);
# connection limit — raise `max_connections`; long queries — set `statement_timeout`/`lock_timeout`.

# %%
rb.show(results, "cloudsql")

# %%
rb.plots.db_latency(evidence, phase.params)

# %% [markdown]
# ## 4. SSL certificates — critical
#
# For each domain: DNS resolves, TCP connects, the TLS handshake completes, the chain verifies, the
# certificate **names the domain**, and it is not about to expire. Then the control plane: a
# Google-managed certificate covering both domains is `ACTIVE` and attached to the target HTTPS proxy.
#
# **If it fails:** a hostname mismatch means the proxy still serves an old certificate (e.g. the
# deprecated `*.staging.` names) — create a managed certificate for both domains and attach it.
# `FAILED_NOT_VISIBLE` means DNS does not point at the load balancer yet.

# %%
rb.show(results, "certificates")

# %%
rb.tables.served_certificates(evidence)

# %% [markdown]
# ## 5. Load balancer — high
#
# Services take up to 600 s to start. The health checks must tolerate that (interval × unhealthy
# threshold ≥ startup time, correct request paths) and each backend service's timeout must be at
# least 600 s — it also caps how long a WebSocket can live. Health endpoints must answer 200 within 10 s.
#
# **If it fails:** patch the health checks and backend timeouts (Phase 2 plans them). A health
# endpoint that fails only because of TLS is a certificate problem (see above).

# %%
rb.show(results, "load_balancer")

# %%
rb.plots.http_phases(evidence)

# %% [markdown]
# ## 6. Secret Manager — high
#
# All required secrets must exist with an **enabled latest version**. Only metadata is read:
# the runbook never reads secret values unless `secrets.inspect_values: true`, and even then only a
# format verdict is kept.
#
# **If it fails:** a person supplies the value (Phase 2 lists the exact steps); a disabled version
# needs enabling or a new version.

# %%
rb.show(results, "secrets")

# %% [markdown]
# ## 7. Cloud Run services
#
# Each service exists, its latest revision is ready and serving, it sends all egress through the
# connector, and no environment value still points at a deprecated domain.

# %%
rb.show(results, "cloud_run")

# %% [markdown]
# ## 8. Cloud Monitoring
#
# Connector instances (pinned at the maximum means saturation), database connections and latency
# percentiles over the last hour.

# %%
rb.plots.monitoring(evidence, phase.params)

# %% [markdown]
# ## 9. Root causes and verdict
#
# Failing checks grouped by the component that is broken in its own right; symptoms (a slow
# database behind a saturated connector) are attributed to their cause. The verdict line is the
# one the incident's health check printed; CI exits non-zero unless it says HEALTHY.

# %%
rb.tables.faults_frame(results)

# %% tags=["nbval-check-output"]
verdict = phase.finish(results)

# %% [markdown]
# ## 10. Re-run one probe
#
# After a fix, or to watch a flapping dependency, run a single probe again without gathering
# everything: set `probe_key` to any key of `evidence.probes` (`postgres.connect`,
# `tls.api-staging.netrasystems.ai`, `http.api-staging.netrasystems.ai/health`…) and re-run the
# cell. A replay target shows what was recorded instead.

# %%
probe_key = "postgres.connect"
phase.probe_again(probe_key)
