"""The test suite, a package: every test module and helper has one import name (``tests.…``),
so helpers are imported by that name and fixtures come from conftest plugins (``tests/plugins``),
never through ``sys.path`` edits."""
