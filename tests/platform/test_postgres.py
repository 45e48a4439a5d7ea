"""The records layer on a real PostgreSQL (a throwaway cluster on a unix socket, no TCP)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from cloudbank.platform.audit import AuditChain
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import SCHEMA_VERSION, create_engine, migrate
from cloudbank.platform.tokens import KeyRing

pytestmark = pytest.mark.slow


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries are missing: scripts/test.sh installs Debian's postgresql")
    return os.path.dirname(found[-1])


def _as_postgres(*argv: str) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _pg_bin()
    base = tempfile.mkdtemp(prefix="cb-pg-")
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.mkdir(sock)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(_as_postgres(f"{bindir}/initdb", "-D", data, "-U", "cloudbank", "--auth=trust"),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres(f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "log"), "-o",
                                f"-k {sock} -c listen_addresses='' -p 5439", "start"), check=True, capture_output=True)
    try:
        yield f"postgresql+asyncpg://cloudbank@/postgres?host={sock}&port=5439"
    finally:
        subprocess.run(_as_postgres(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


async def test_schema_identity_tokens_and_audit_on_postgres(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        assert await migrate(engine) == SCHEMA_VERSION
        assert await migrate(engine) == SCHEMA_VERSION
        directory = Directory(engine)
        user, password = await directory.add_user("pgteller", "teller")
        assert (await directory.check_password("pgteller", password)) == user
        keys = KeyRing(engine)
        await keys.load()
        assert (await keys.verify(keys.issue(user.id, "teller", "api", 60))).sub == user.id
        chain = AuditChain(engine)
        for i in range(5):
            await chain.append(user.id, "test", f"s{i}", {"i": i})
        result = await chain.verify()
        assert result.ok and result.records == 5
    finally:
        await engine.dispose()
