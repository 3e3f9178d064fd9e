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
# # Phase 3 — Validation & hand-back
#
# **What this proves:** the environment is healthy *now*, with evidence. Every Phase 1 check runs
# again from scratch (nothing cached), then the **golden path** a customer takes: log in, open the
# chat's WebSocket (connected in under 10 s), send a message and receive the AI answer with the
# five agent events in order (`agent_started`, `agent_thinking`, `tool_executing`,
# `tool_completed`, `agent_completed`), read the saved history back, and hold API latency under
# 5 s with an error rate under 1 % over N requests.


# %% tags=["parameters"]
params_file = "../parameters/replay.yaml"
overrides = {}
report_dir = None

# %%
import runbook_lib as rb

phase = rb.Phase("validate", params_file, overrides, report_dir)
phase.run(golden_path=True)

# %% tags=["nbval-check-output"]
phase.print_verdict()

# %% [markdown]
# ## What to do now

# %%
phase.what_to_do()

# %% [markdown]
# ## Golden path
#
# **If it fails:** a login refused with a list of secrets means Secret Manager is incomplete; a
# WebSocket cut before `agent_completed` means a timeout on the path is too short (the Cloud Run
# request timeout, or the backend service timeout for instance groups); a timeout on login or
# history means the database path (connector, Cloud SQL) is still broken. The waterfall shows
# where the time went.
#
# `golden.startup` is the p95 of Cloud Monitoring's `run.googleapis.com/container/startup_latencies`
# for the serving revision, against the 300 s startup target (`thresholds.startup_s`).

# %%
phase.show("golden_path")

# %%
phase.plot("golden_waterfall")

# %% [markdown]
# ## Infrastructure, re-checked

# %%
phase.show("connector")

# %%
phase.show("cloudsql")

# %%
phase.plot("db_latency")

# %%
phase.show("certificates")

# %%
phase.show("load_balancer")

# %%
phase.show("secrets")

# %%
phase.show("cloud_run")

# %% [markdown]
# ## Other checks
#
# Components that have no section of their own in this notebook (yet), so that no result is left
# out of the page.

# %%
phase.show_others()

# %% [markdown]
# ## Evidence

# %%
phase.evidence_links()

# %% [markdown]
# ## The hand-back (summary.md)

# %%
rb.summary_markdown(phase)

# %% [markdown]
# ## How to use this notebook
#
# **Hand-back:** the summary at the end is what `runbook attach` posts on the tracking issue. A ✅
# is a component whose checks all passed in this run; a skip is shown as skipped with its reason.
# Re-running the cell after the parameters refreshes everything below.
