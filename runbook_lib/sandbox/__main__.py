"""``python -m runbook_lib.sandbox serve --params FILE --scenario NAME --workdir DIR``

Runs the sandbox in the foreground until SIGTERM or SIGINT, then shuts it down cleanly
(PostgreSQL stopped, every port closed, the password files removed). ``state.json`` appears in
the workdir only once everything is ready; ``runbook_lib.sandbox.manager`` waits for it.
Exit status: 0 after a clean shutdown, 2 when the sandbox could not start (one line on stderr).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from runbook_lib import redact
from runbook_lib.errors import RunbookError
from runbook_lib.params import load_params
from runbook_lib.sandbox.scenario import load_scenario
from runbook_lib.sandbox.server import Sandbox


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact.text(super().format(record))


async def serve(params_file: str, scenario_name: str, workdir: str, time_scale: float | None,
                watch_parent: int | None = None) -> None:
    params = load_params(params_file)
    scenario = load_scenario(scenario_name)
    sandbox = Sandbox(params, scenario, Path(workdir), time_scale=time_scale)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(_stop_when_gone(watch_parent, stop)) if watch_parent else None
    try:
        await sandbox.start()
        await stop.wait()
        logging.getLogger(__name__).info("stopping the sandbox")
    finally:
        if watcher is not None:
            watcher.cancel()
        await sandbox.stop()


async def _stop_when_gone(pid: int, stop: asyncio.Event) -> None:
    """A sandbox started for one run (not ``sandbox up``) must not outlive it, even a SIGKILLed one."""
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            logging.getLogger(__name__).info("process %d that started this sandbox is gone: stopping", pid)
            stop.set()
            return
        except PermissionError:
            pass  # it exists, under another user
        await asyncio.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_lib.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the sandbox in the foreground until SIGTERM/SIGINT")
    run.add_argument("--params", required=True, help="parameters file (names of every resource)")
    run.add_argument("--scenario", required=True, help="scenario name (e.g. issue-1278) or YAML file")
    run.add_argument("--workdir", required=True, help="folder for state.json, password files, the database")
    run.add_argument("--time-scale", type=float, default=None, help="override target.time_scale")
    run.add_argument("--watch-parent", type=int, default=None, metavar="PID",
                     help="stop when this process is gone (runs that start their own sandbox)")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        from runbook_lib.sandbox.manager import hold_serve_lock

        lock = hold_serve_lock(Path(args.workdir))  # one sandbox per workdir, held until we exit
        redact.warm()  # before serving: the first redacted log line must not stall a request
        try:
            asyncio.run(serve(args.params, args.scenario, args.workdir, args.time_scale, args.watch_parent))
        finally:
            lock.release()
    except RunbookError as exc:
        print(f"sandbox: {redact.text(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sandbox: could not start: {redact.text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
