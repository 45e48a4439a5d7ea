"""The `cloudbank` command: the edge where argv, environment and TOML become one Config.

Every failure a person can cause (bad flag, bad setting, unusable data folder, Redis that does
not answer, a port in use) ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cloudbank.platform.config import Config, load_config
from cloudbank.platform.errors import ApiError, CloudbankError, StartupError

if TYPE_CHECKING:
    from cloudbank.platform.seed import SeedResult

EXIT_USAGE = 2
Command = Callable[[argparse.Namespace, Config], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data folder (default ./cloudbank-data; env CLOUDBANK_DATA)")
    p.add_argument("--config", type=Path, help="a TOML file of settings (env CLOUDBANK_CONFIG)")
    p.add_argument("--redis-url", help="use this Redis instead of the embedded one (env CLOUDBANK_REDIS_URL)")
    p.add_argument("--database-url", help="SQLAlchemy async URL, e.g. postgresql+asyncpg://... "
                                          "(env CLOUDBANK_DATABASE_URL)")


def _serving(p: argparse.ArgumentParser, default_port: int | None = None) -> None:
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"port to bind (default {default_port or 8080})")
    p.add_argument("--tls", action="store_true", default=None,
                   help="serve HTTPS (a self-signed certificate under the data folder unless --tls-cert/--tls-key)")
    p.add_argument("--tls-cert", help="PEM certificate for HTTPS (env CLOUDBANK_TLS_CERT)")
    p.add_argument("--tls-key", help="PEM private key for HTTPS (env CLOUDBANK_TLS_KEY)")


def _config(args: argparse.Namespace) -> Config:
    overrides = {key: getattr(args, key, None)
                 for key in ("data", "host", "port", "redis_url", "database_url", "tls", "tls_cert", "tls_key")}
    return load_config(overrides, toml_path=getattr(args, "config", None))


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


def _setup_logging(config: Config) -> None:
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _with_redis(config: Config, body: Callable[[Config], int]) -> int:
    """Run `body` with a Redis URL: the configured one (checked), else the embedded server."""
    from cloudbank.platform.redis_server import EmbeddedRedis
    from cloudbank.platform.server import check_data_folder, check_redis

    check_data_folder(config)
    if not config.redis_embedded:
        _run(_checked(check_redis(config)))
        return body(config)
    with EmbeddedRedis(config.data / "redis") as embedded:
        return body(config.with_(redis_url=embedded.url))


async def _checked(coro: Coroutine[Any, Any, None]) -> int:
    await coro
    return 0


def cmd_up(args: argparse.Namespace, config: Config) -> int:
    from cloudbank.platform.server import serve

    _setup_logging(config)

    def body(cfg: Config) -> int:
        async def go() -> int:
            from cloudbank.platform.server import prepare_database

            await prepare_database(cfg)
            seeded = await _seed(cfg)
            await serve(cfg, ["platform", "video", "media", "seat", "phone"],
                        on_ready=lambda c: _announce(c, seeded, data_flag(config)))
            return 0

        return _run(go())

    return _with_redis(config, body)


async def _seed(config: Config) -> SeedResult:
    from cloudbank.platform.identity import Directory
    from cloudbank.platform.records import create_engine
    from cloudbank.platform.seed import seed_demo

    engine = create_engine(config.effective_database_url)
    try:
        return await seed_demo(Directory(engine))
    finally:
        await engine.dispose()


def data_flag(config: Config) -> str:
    """` --data DIR` when `cloudbank up` ran on another folder than the default, so the commands it
    prints work as they are pasted."""
    return "" if config.data == Config().data else f" --data {shlex.quote(str(config.data))}"


def announcement(base: str, prefixes: Sequence[tuple[str, str]], seeded: SeedResult, data: str = "",
                 tls: str = "", trust: str = "") -> str:
    """What `cloudbank up` prints when it is ready: where each part is, the demo accounts (first
    start only), and the exact commands to start a kiosk. `tls`: the certificate's lines; `trust`:
    what the kiosk command needs to trust a self-signed certificate."""
    lines = [f"cloudbank is up on {base}"]
    lines += [f"  {title:<34} {base}{prefix}" for title, prefix in prefixes]
    lines.append(f"  {'supervisor view (sign in as one)':<34} {base}/seat/")
    if tls:
        lines.append(tls)
    if seeded.created:
        lines.append("Demo data created (shown once, keep it):")
        lines += [f"  {role:<11} {user:<12} password: {pw}" for role, user, pw in seeded.accounts]
        lines.append(f"  kiosk enrolment code for branch 'demo': {seeded.enrolment_code} (single use)")
        lines.append("Start a kiosk (the code enrols it once; later starts need only --server):")
        lines.append(f"  {trust}cloudbank kiosk --server {base} --enrol-code {seeded.enrolment_code}")
    else:
        lines.append("Demo accounts were printed at the first start (cloudbank users list shows them).")
        lines.append("A kiosk enrolled before starts with:")
        lines.append(f"  {trust}cloudbank kiosk --server {base}")
        lines.append("A new kiosk needs a one-time code; print one with:")
        lines.append(f"  cloudbank devices enrol --branch demo{data}")
        lines.append(f"  then: {trust}cloudbank kiosk --server {base} --enrol-code <that code>")
    lines.append("Stop: Ctrl-C")
    return "\n".join(lines)


async def _announce(config: Config, seeded: SeedResult, data: str = "") -> None:
    from cloudbank.platform.server import mounts

    prefixes = [(m.title, m.prefix) for m in mounts().values()]
    trust = ""
    if config.tls and not config.tls_cert:
        from cloudbank.platform.tls import certificate_paths

        trust = f"SSL_CERT_FILE={shlex.quote(str(certificate_paths(config)[0].absolute()))} "
    print(announcement(config.base_url, prefixes, seeded, data, tls_line(config), trust), flush=True)


def tls_line(config: Config) -> str:
    """Under HTTPS, the certificate's fingerprint to check against what the browser shows."""
    if not config.tls:
        return ""
    from cloudbank.platform.tls import certificate_paths, fingerprint

    cert, _ = certificate_paths(config)
    kind = "given" if config.tls_cert else "self-signed: check it before trusting it in a browser"
    return f"  HTTPS certificate {cert} ({kind}), SHA-256 fingerprint:\n    {fingerprint(cert)}"


def _cmd_service(name: str) -> Command:
    def run(args: argparse.Namespace, config: Config) -> int:
        from cloudbank.platform.server import check_data_folder, check_redis, prepare_database, serve

        _setup_logging(config)
        if config.redis_embedded:
            raise StartupError(f"cloudbank {name} runs against a shared Redis: set CLOUDBANK_REDIS_URL "
                               f"or --redis-url, or CLOUDBANK_REDIS_SENTINELS for Redis with failover "
                               f"(or use 'cloudbank up' for everything in one process)")
        check_data_folder(config)

        async def go() -> int:
            await check_redis(config)
            await prepare_database(config)

            async def ready(c: Config) -> None:
                print("\n".join(filter(None, [f"cloudbank {name} is up on {c.base_url}", tls_line(c)])), flush=True)

            await serve(config, [name], on_ready=ready)
            return 0

        return _run(go())

    return run


def _db_command(body: Callable[[Any], Coroutine[Any, Any, int]], existing: bool = False) -> Command:
    """A command that needs only the records database; with `existing`, one that only reads or
    changes what is there, so a wrong --data folder is named instead of quietly made empty."""

    def run(args: argparse.Namespace, config: Config) -> int:
        from cloudbank.platform.records import create_engine
        from cloudbank.platform.server import check_data_folder, prepare_database

        if existing and config.database_url is None and not config.sqlite_path.exists():
            raise StartupError(f"no cloudbank database in {config.data.resolve()}: pass --data (or set "
                               f"CLOUDBANK_DATA to) the folder 'cloudbank up' uses")
        check_data_folder(config)

        async def go() -> int:
            await prepare_database(config)
            engine = create_engine(config.effective_database_url)
            try:
                return await body((args, config, engine))
            finally:
                await engine.dispose()

        return _run(go())

    return run


async def _audit(engine: Any, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
    """Administrative commands leave a record in the audit chain like the API does."""
    from cloudbank.platform.audit import AuditChain

    await AuditChain(engine).append("cli", action, subject, details)


async def _users_add(ctx: Any) -> int:
    from cloudbank.platform.identity import Directory

    args, _config_, engine = ctx
    password = None
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n") or None
    skills = _parse_skills(args.skills) if args.skills else None
    if skills is None and args.role == "teller":
        from cloudbank.platform.catalogue import Catalogue

        # Every skill that needs no special qualification (`general` included).
        skills = await Catalogue(engine).default_teller_skills()
    user, password = await Directory(engine).add_user(args.name, args.role, args.display_name or "",
                                                      password, skills=skills)
    await _audit(engine, "user.added", f"user:{user.id}", {"username": user.username, "role": user.role})
    print(f"created {user.role} {user.username} (id {user.id})")
    if not args.quiet_password:
        print(f"password: {password}")
    return 0


def _parse_skills(text: str) -> dict[str, int]:
    skills: dict[str, int] = {}
    for part in text.split(","):
        code, _, level = part.strip().partition(":")
        if not code:
            continue
        try:
            skills[code] = int(level or 1)
        except ValueError:
            raise StartupError(f"--skills: '{part}' is not CODE or CODE:LEVEL") from None
    return skills


async def _users_list(ctx: Any) -> int:
    from cloudbank.platform.identity import Directory

    _args, _config_, engine = ctx
    for u in await Directory(engine).list_users():
        skills = ",".join(f"{k}:{v}" for k, v in sorted(u.skills.items())) or "-"
        print(f"{u.username:<20} {u.role:<11} {u.display_name:<24} skills={skills}")
    return 0


async def _users_unlock(ctx: Any) -> int:
    """Lift a person's sign-in locks. They live in Redis: the configured one, else the embedded one
    of the data folder (the running `cloudbank up`'s socket, or started here for the command)."""
    import redis.asyncio

    from cloudbank.platform.identity import Directory, LoginGuard
    from cloudbank.platform.redis_pool import redis_for
    from cloudbank.platform.redis_server import EmbeddedRedis

    args, config, engine = ctx
    user = next((u for u in await Directory(engine).list_users() if u.username == args.name.lower()), None)
    if user is None:
        raise StartupError(f"no person named {args.name}; cloudbank users list shows them")
    embedded = None
    if config.redis_embedded:
        folder_redis = EmbeddedRedis(config.data / "redis")
        probe = redis.asyncio.Redis.from_url(folder_redis.url, socket_connect_timeout=2)
        try:
            await probe.ping()  # `cloudbank up` is running on this folder: use its Redis
        except (OSError, redis.exceptions.ConnectionError):
            folder_redis.start()
            embedded = folder_redis
        finally:
            await probe.aclose()
        config = config.with_(redis_url=folder_redis.url)
    client = redis_for(config, max_connections=2)  # the configured URL or Sentinel's master
    try:
        guard = LoginGuard(client, config.login_max_failures, config.login_lockout_s, config.login_ip_per_minute)
        cleared = await guard.unlock(user.username)
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()
    await _audit(engine, "user.unlocked", f"user:{user.id}", {"username": user.username, "cleared": cleared})
    print(f"unlocked {user.username} ({cleared} lock and failure records cleared)")
    return 0


async def _devices_enrol(ctx: Any) -> int:
    from cloudbank.platform.identity import Directory

    args, _config_, engine = ctx
    directory = Directory(engine)
    if args.create_branch:
        await directory.ensure_branch(args.branch, args.create_branch)
    code = await directory.create_enrolment_code(args.branch)
    await _audit(engine, "device.enrolment_code", f"branch:{args.branch}")
    print(f"enrolment code for branch {args.branch}: {code}")
    return 0


async def _audit_verify(ctx: Any) -> int:
    from cloudbank.platform.audit import AuditChain

    _args, config, engine = ctx
    result = await AuditChain(engine).verify(base=config.data)
    print(result)
    return 0 if result.ok else 1


async def _keys_rotate(ctx: Any) -> int:
    from cloudbank.platform.tokens import KeyRing

    _args, _config_, engine = ctx
    ring = KeyRing(engine)
    await ring.load()
    kid = await ring.rotate()
    await _audit(engine, "keys.rotated", f"key:{kid}")
    print(f"new signing key {kid}; tokens signed with older keys stay valid until they expire")
    return 0


BENCHES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {}


def register_bench(name: str, help_text: str, add_args: Callable[[argparse.ArgumentParser], None],
                   run: Command) -> None:
    BENCHES[name] = (help_text, add_args, run)


def _load_benches() -> None:
    """Benchmarks live beside the code they measure; each module registers itself."""
    import importlib

    for module in ("cloudbank.platform.bench_acd", "cloudbank.video.bench_media", "cloudbank.video.bench_asr",
                   "cloudbank.kiosk_client.bench_kiosks"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cloudbank", description="cloudbank: remote video tellers for bank branches.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole system in one process on the embedded default")
    _common(up)
    _serving(up)
    up.set_defaults(func=cmd_up)

    for name, text in (("platform", "the service platform API"), ("video", "a video node"),
                       ("media", "the media platform and admin console"), ("seat", "the teller console"),
                       ("phone", "the phone client page")):
        p = sub.add_parser(name, help=f"run {text} alone against a shared Redis and database")
        _common(p)
        _serving(p)
        p.set_defaults(func=_cmd_service(name))

    from cloudbank.kiosk_client import kiosk_cli

    kiosk = sub.add_parser("kiosk", help="run the reference kiosk app against a cloudbank server")
    kiosk_cli.add_arguments(kiosk)
    kiosk.set_defaults(func=kiosk_cli.command)

    users = sub.add_parser("users", help="manage tellers, supervisors and admins")
    users_sub = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser, metavar="ACTION")
    add = users_sub.add_parser("add", help="add a person (password read from stdin, else generated)")
    _common(add)
    add.add_argument("--role", required=True, choices=["teller", "supervisor", "admin"])
    add.add_argument("--name", required=True, help="username (a-z, 0-9, . _ -)")
    add.add_argument("--display-name", help="name shown to customers and colleagues")
    add.add_argument("--skills", help="teller skills as CODE:LEVEL,... (default: every general skill)")
    add.add_argument("--quiet-password", action="store_true", help=argparse.SUPPRESS)
    add.set_defaults(func=_db_command(_users_add))
    lst = users_sub.add_parser("list", help="list people")
    _common(lst)
    lst.set_defaults(func=_db_command(_users_list, existing=True))
    unlock = users_sub.add_parser("unlock", help="lift a person's sign-in locks (after repeated wrong passwords)")
    _common(unlock)
    unlock.add_argument("name", metavar="USERNAME")
    unlock.set_defaults(func=_db_command(_users_unlock, existing=True))

    devices = sub.add_parser("devices", help="kiosk devices")
    dev_sub = devices.add_subparsers(dest="devices_command", required=True, parser_class=_Parser, metavar="ACTION")
    enrol = dev_sub.add_parser("enrol", help="print a one-time enrolment code for a kiosk")
    _common(enrol)
    enrol.add_argument("--branch", required=True, help="branch id, e.g. demo")
    enrol.add_argument("--create-branch", metavar="NAME", help="create the branch with this name if missing")
    enrol.set_defaults(func=_db_command(_devices_enrol))

    audit = sub.add_parser("audit", help="the audit chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="walk the chain; print OK or the first broken record")
    _common(verify)
    verify.set_defaults(func=_db_command(_audit_verify, existing=True))

    keys = sub.add_parser("keys", help="token signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser, metavar="ACTION")
    rotate = keys_sub.add_parser("rotate", help="start signing with a new key (nobody is logged out)")
    _common(rotate)
    rotate.set_defaults(func=_db_command(_keys_rotate, existing=True))

    _load_benches()
    bench = sub.add_parser("bench", help="benchmarks (print a table, write JSON)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, parser_class=_Parser, metavar="NAME")
    for name, (help_text, add_args, run) in BENCHES.items():
        b = bench_sub.add_parser(name, help=help_text)
        _common(b)
        b.add_argument("--json", type=Path, help="write the results here as JSON")
        add_args(b)
        b.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        return int(args.func(args, config))
    except (CloudbankError, ApiError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        print(f"cloudbank: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
