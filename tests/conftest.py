"""The suite's plugins: sandboxes (start, diagnose, the emulator's hooks, sandboxes shared by
several tests), CLI runs (the runbook as a subprocess, expensive runs shared by several tests) and
the worker groups that keep the tests sharing one of them in one process under pytest-xdist."""
pytest_plugins = ["tests.plugins.sandboxes", "tests.plugins.runs", "tests.plugins.workers"]
