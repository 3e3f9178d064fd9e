"""Benchmarks of the runbook (issue 6): ``make bench`` or ``python -m bench [--quick]``.

Results go to ``bench/results/<date>.json`` and ``<date>.md``. Never part of ``make test``.
"""
