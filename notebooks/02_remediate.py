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
# # Phase 2 — Remediation
#
# **What this does:** turns Phase 1's failing checks into a plan that follows the incident's
# playbook, one action per problem: the exact API request, the equivalent `gcloud` command, the
# risk, how to roll it back and which check proves it worked.
#
# **Safety:** this is a **dry run** unless the parameters say `remediation.apply: true` **and**
# `remediation.confirm: <the plan id printed below>`. A stale or mistyped id is refused. Every
# action reads the resource first and only sends what is still needed (applying twice changes
# nothing), records the resource before and after in the audit log, and stops at the first
# failure with the rollback commands. Secret values come only from the environment variable or
# file that the parameters name, and are never shown or written.

# %% tags=["parameters"]
params_file = "../parameters/replay.yaml"
overrides = {}
report_dir = None

# %%
import runbook_lib as rb

phase = rb.Phase("remediate", params_file, overrides, report_dir)
diagnosis = phase.diagnosis()

# %% [markdown]
# ## 1. The plan
#
# Each row fixes one or more failing checks. Read the **risk** and **rollback** columns before
# applying. Manual steps (a secret value only a person may supply, DNS records for a certificate,
# anything the runbook could not observe) are listed with exact instructions.

# %%
plan = phase.plan(diagnosis)
plan.table()

# %% tags=["nbval-check-output"]
print(f"Plan {plan.id}: {len(plan.actions)} actions ({len(plan.automatic)} automatic, {len(plan.manual)} manual)")

# %% [markdown]
# ## 2. Apply (or dry run)
#
# To apply, run again with `-p remediation.apply=true -p remediation.confirm=<plan id>` (or set
# them in the parameters cell). If an action fails, the run stops there: the audit log shows what
# changed and the rollback commands undo it.

# %%
applied = phase.apply(plan)
print(applied.message)
rb.tables.audit_frame(applied)

# %% [markdown]
# ## 3. Re-verify
#
# The affected checks, run again from scratch against the environment (nothing cached). Phase 3
# then re-runs everything and walks the golden path.

# %%
verification = phase.verify(plan, applied)
rb.show(verification)

# %%
phase.finish(verification, plan=plan.model_dump(mode="json"), applied=applied.mode == "applied",
             apply_report=applied.model_dump(mode="json"))
