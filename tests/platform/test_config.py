from __future__ import annotations

from pathlib import Path

import pytest

from cloudbank.platform.config import Config, load_config
from cloudbank.platform.errors import ConfigError


def test_defaults_and_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 9000\nhost = "127.0.0.2"\nring_timeout_s = 5\n')
    env = {"CLOUDBANK_PORT": "9100", "CLOUDBANK_RING_TIMEOUT_S": "7.5"}
    cfg = load_config({"port": 9200}, environ=env, toml_path=toml)
    assert cfg.port == 9200            # flag beats env beats file
    assert cfg.ring_timeout_s == 7.5   # env beats file
    assert cfg.host == "127.0.0.2"     # file beats default
    assert load_config(environ={}) == Config()


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Config().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("env", "setting"), [
    ({"CLOUDBANK_PORT": "eighty"}, "port"),
    ({"CLOUDBANK_PORT": "70000"}, "port"),
    ({"CLOUDBANK_REDIS_URL": "http://x"}, "redis_url"),
    ({"CLOUDBANK_DATABASE_URL": "mysql://x"}, "database_url"),
    ({"CLOUDBANK_ICE_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-net"}, "ice_allowed_networks"),
    ({"CLOUDBANK_ICE_ADDRESSES": "localhost"}, "ice_addresses"),
    ({"CLOUDBANK_LOG_LEVEL": "LOUD"}, "log_level"),
    ({"CLOUDBANK_RING_TIMEOUT_S": "-1"}, "ring_timeout_s"),
])
def test_bad_values_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    assert info.value.setting == setting
    assert "CLOUDBANK_" + setting.upper() in str(info.value)


def test_toml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(environ={}, toml_path=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(environ={}, toml_path=unknown)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(environ={}, toml_path=tmp_path / "missing.toml")


def test_derived_urls(tmp_path: Path) -> None:
    cfg = Config(data=tmp_path, host="0.0.0.0", port=8081)
    assert cfg.base_url == "http://127.0.0.1:8081"
    assert cfg.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'cloudbank.sqlite3'}"
    assert cfg.redis_embedded


def test_redis_sentinels_are_read_once_at_the_edge() -> None:
    cfg = load_config(environ={"CLOUDBANK_REDIS_SENTINELS": "10.0.0.5:26379, [::1]:26380",
                               "CLOUDBANK_REDIS_MASTER": "bank"})
    assert cfg.redis_sentinels == ("10.0.0.5:26379", "[::1]:26380") and cfg.redis_master == "bank"
    assert not cfg.redis_embedded  # no embedded Redis is started when Sentinel names the master
    assert load_config(environ={}).redis_master == "cloudbank"
    for bad in ("10.0.0.5", "host:port", "10.0.0.5:0"):
        with pytest.raises(ConfigError) as info:
            load_config(environ={"CLOUDBANK_REDIS_SENTINELS": bad})
        assert info.value.setting == "redis_sentinels"
    with pytest.raises(ConfigError, match="not both"):
        load_config(environ={"CLOUDBANK_REDIS_SENTINELS": "10.0.0.5:26379", "CLOUDBANK_REDIS_URL": "redis://x"})
