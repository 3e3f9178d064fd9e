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
# # Phase 3 — Validation & hand-back
#
# **What this proves:** the environment is healthy *now*, with evidence. Every Phase 1 check runs
# again from scratch (nothing cached), then the **golden path** a customer takes: log in, open the
# chat's WebSocket (connected in under 10 s), send a message and receive the AI answer with the
# five agent events in order (`agent_started`, `agent_thinking`, `tool_executing`,
# `tool_completed`, `agent_completed`), read the saved history back, and hold API latency under
# 5 s with an error rate under 1 % over N requests.
#
# **Hand-back:** the summary below is the success declaration posted on the tracking issue
# (`runbook attach`). Each ✅ is backed by passing checks of this run; anything else is ❌ with why.

# %% tags=["parameters"]
params_file = "../parameters/replay.yaml"
overrides = {}
report_dir = None

# %%
import runbook_lib as rb

phase = rb.Phase("validate", params_file, overrides, report_dir)

# %% [markdown]
# ## 1. Every check again, and the golden path

# %%
evidence = phase.gather(golden_path=True)
results = phase.evaluate(evidence)
rb.tables.component_summary(results)

# %% [markdown]
# ## 2. Golden path
#
# **If it fails:** a login refused with a list of secrets means Secret Manager is incomplete; a
# WebSocket cut before `agent_completed` means the backend service timeout is too short; a timeout
# on login or history means the database path (connector, Cloud SQL) is still broken. The waterfall
# shows where the time went.

# %%
rb.show(results, "golden_path")

# %%
rb.plots.golden_waterfall(rb.golden_steps(evidence), time_scale=evidence.meta.time_scale)

# %% [markdown]
# ## 3. Infrastructure, re-checked

# %%
rb.show(results, problems_only=True)

# %%
rb.plots.db_latency(evidence, phase.params)

# %% [markdown]
# ## 4. Verdict and success declaration

# %% tags=["nbval-check-output"]
verdict = phase.finish(results)

# %%
rb.summary_markdown(phase)
