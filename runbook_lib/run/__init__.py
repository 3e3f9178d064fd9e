"""Run: the phases as notebooks, headless or interactive, into one archived report folder.

``runner.py`` is ``runbook run`` (validate, start the target, papermill each phase, HTML, index);
``phase.py`` is what a notebook calls (gather, evaluate, finish, show); ``preflight.py`` refuses
what a run cannot honour before any kernel starts; ``headless.py`` is ``runbook check/plan/record``;
``report.py`` owns the report folder and its status files. The orchestrator: it may use every
stage (gather, checks, remediate, render) and the domain model.
"""
