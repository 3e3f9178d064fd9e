"""Run a coroutine to completion from synchronous code, inside Jupyter or not.

A Jupyter kernel already runs an event loop, so ``asyncio.run`` would refuse; a short-lived
worker thread with its own loop works the same everywhere.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, TypeVar

T = TypeVar("T")


def run_sync(coro: Awaitable[T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="runbook-async") as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]
