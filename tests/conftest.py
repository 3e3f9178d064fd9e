"""The suite's plugins: sandboxes (start, diagnose, the emulator's hooks, sandboxes shared by
several tests) and CLI runs (the runbook as a subprocess, expensive runs shared by several tests)."""
pytest_plugins = ["tests.plugins.sandboxes", "tests.plugins.runs"]
