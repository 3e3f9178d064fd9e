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
# # Phase 2 — Remediation
#
# **What this does:** turns Phase 1's failing checks into a plan that follows the incident's
# playbook, one action per problem: the exact API request, the equivalent `gcloud` command, the
# risk, how to roll it back and which check proves it worked.


# %% tags=["parameters"]
params_file = "../parameters/replay.yaml"
overrides = {}
report_dir = None

# %%
import runbook_lib as rb

phase = rb.Phase("remediate", params_file, overrides, report_dir)
phase.remediate()

# %% tags=["nbval-check-output"]
phase.print_plan()

# %% [markdown]
# ## The plan
#
# The actions in the order they are applied. For each: what it does, which failing checks it
# fixes, the `gcloud` command and the API request it sends, its **risk** and **rollback**, and
# the checks that prove it worked. Manual steps (a secret value only a person may supply, anything
# the runbook cannot do safely) say exactly what to do.

# %%
phase.plan_view()

# %% [markdown]
# ## What was applied (audit log)
#
# Per action: the outcome, the requests sent, and the resource **before -> after** (the fields
# that changed). A dry run sends nothing. To apply, run again with
# `-p remediation.apply=true -p remediation.confirm=<plan id>`. If an action fails, the run stops
# there and the rollback commands undo what changed.

# %%
phase.audit_view()

# %% [markdown]
# ## Re-verified
#
# The checks the applied actions answer, run again from scratch against the environment (nothing
# cached). Phase 3 then re-runs everything and walks the golden path.

# %%
phase.show()

# %% [markdown]
# ## How to use this notebook
#
# **Safety:** this is a **dry run** unless the parameters say `remediation.apply: true` **and**
# `remediation.confirm: <the plan id printed below>`. A stale or mistyped id is refused. Every
# action reads the resource first and only sends what is still needed (applying twice changes
# nothing), records the resource before and after in the audit log, and stops at the first
# failure with the rollback commands. Secret values come only from the environment variable or
# file that the parameters name, and are never shown or written.
#
# **One apply per target at a time:** a second one is refused, naming the holder (pid, host, plan
# id, since). The audit records *sending* before each request and every poll of its operation, so
# an apply killed mid-request is reported by the next one. Cloud Run fixes are `services.patch`
# requests that create a revision; the apply waits until it is Ready and serves 100 %. Rollback
# sends the traffic back to the revision that served before. The legacy certificate is detached
# only once the managed one is `ACTIVE` and served on both domains; until then that action stays
# *pending* with the reason.
#
# Re-running the cell after the parameters (e.g. with `apply`/`confirm` set) refreshes everything below.
