"""Test helpers shared by several test folders, loaded as pytest plugins by ``tests/conftest.py``:
their fixtures need no import; their plain functions are imported by name (``tests.plugins.…``)."""
