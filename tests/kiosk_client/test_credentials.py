"""The device credential file: 0600 on disk, refused when too open, edited, truncated or swapped."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cloudbank.kiosk_client import credentials
from cloudbank.kiosk_client.errors import CredentialError


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "kiosk" / "device.json"
    credentials.save(path, credentials.new("http://127.0.0.1:8080/", "dev-1", "demo", "tok.en.sig"))
    return path


def test_round_trip_with_private_permissions(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    cred = credentials.load(path)
    assert (cred.server, cred.device_id, cred.branch_id, cred.token) == \
        ("http://127.0.0.1:8080", "dev-1", "demo", "tok.en.sig")
    for p in (path, path.with_name("device.json.key")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_missing_file_says_to_enrol(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="enrol"):
        credentials.load(tmp_path / "nothing.json")


@pytest.mark.parametrize("which", ["device.json", "device.json.key"])
def test_group_readable_files_are_refused(tmp_path: Path, which: str) -> None:
    path = _saved(tmp_path)
    os.chmod(path.with_name(which), 0o644)
    with pytest.raises(CredentialError, match="readable by others"):
        credentials.load(path)


@pytest.mark.parametrize("field,value", [("device_id", "dev-2"), ("server", "http://evil.example"),
                                         ("token", "other.token.sig"), ("enrolled_at", 0.0)])
def test_an_edited_field_is_detected(tmp_path: Path, field: str, value: object) -> None:
    path = _saved(tmp_path)
    body = json.loads(path.read_text())
    body[field] = value
    path.write_text(json.dumps(body))
    with pytest.raises(CredentialError, match="modified"):
        credentials.load(path)


def test_truncated_extra_field_and_corrupt_key_are_detected(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(CredentialError, match="not valid JSON"):
        credentials.load(path)
    body = json.loads(original)
    path.write_text(json.dumps({**body, "admin": True}))
    with pytest.raises(CredentialError, match="unexpected fields"):
        credentials.load(path)
    path.write_bytes(original)
    credentials.load(path)
    path.with_name("device.json.key").write_text("not hex")
    with pytest.raises(CredentialError, match="corrupt"):
        credentials.load(path)


def test_a_file_from_an_older_enrolment_does_not_verify(tmp_path: Path) -> None:
    """Re-enrolling rotates the key: a copy of the old file cannot be put back."""
    path = _saved(tmp_path)
    old = path.read_bytes()
    credentials.save(path, credentials.new("http://127.0.0.1:8080", "dev-9", "demo", "new.token.sig"))
    path.write_bytes(old)
    with pytest.raises(CredentialError, match="modified"):
        credentials.load(path)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    path.unlink()
    path.mkdir(mode=0o700)
    with pytest.raises(CredentialError, match="not a regular file"):
        credentials.load(path)


def test_the_default_kiosk_folder_is_never_committed() -> None:
    # `cloudbank kiosk` run from a checkout keeps its device credential in ./kiosk-data by default.
    import shutil
    import subprocess

    from cloudbank.kiosk_client.kiosk_app import KioskOptions

    repo = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    default = KioskOptions(server="http://127.0.0.1:8080").credential_path
    ignored = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", str(default)], check=False)
    assert ignored.returncode == 0, f"{default} would show up in git status"
