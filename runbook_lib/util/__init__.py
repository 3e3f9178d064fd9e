"""Small helpers with no domain knowledge: the clock, running a coroutine from sync code, reading
untrusted files, percentiles, pydantic errors as one line, a child process's environment. Imports
nothing else from ``runbook_lib`` except ``errors``.
"""
