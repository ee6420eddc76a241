"""A throwaway PostgreSQL cluster from the machine's binaries, run as the ``postgres`` user.

DESIGN.md: ``initdb`` and ``pg_ctl`` from Debian's postgresql-15 (not on PATH), a cluster
in a directory the ``postgres`` user owns, listening on 127.0.0.1 only, trust
authentication. One cluster serves a whole test session; each test gets its own database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresCluster", "find_bin", "postgres_cluster"]

_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin")


def find_bin(name: str) -> str | None:
    for directory in _BIN_DIRS:
        path = Path(directory) / name
        if path.is_file():
            return str(path)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """A running cluster; :meth:`database` makes a new empty database and its URL."""

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        subprocess.run(
            [
                find_bin("createdb") or "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.url(name)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Start a cluster; stopped and removed afterwards.

    Raises:
        RuntimeError: the binaries or the ``postgres`` user are missing (``.ci/run``
            installs Debian's postgresql).
    """
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL's initdb/pg_ctl not found: apt-get install postgresql")
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("no 'postgres' user: apt-get install postgresql") from None
    root = Path(tempfile.mkdtemp(prefix="ecuworks-pg-"))
    os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    port = _free_port()
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield PostgresCluster(port)
    finally:
        subprocess.run(
            [*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
