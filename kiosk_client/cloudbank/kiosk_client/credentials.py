"""The kiosk's device credential on disk: written once at enrolment, read at every start.

The file is JSON with an HMAC-SHA256 over its fields, keyed by a random key in a sibling
`<name>.key` file; both are created with mode 0600 and refused when group/other can read them.
The MAC catches edits and truncation (a changed server URL, a swapped device id); the token inside
is signed by the platform, which remains the authority. Anyone who can read the key can forge the
MAC, so the permissions are what keeps a local user out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloudbank.kiosk_client.errors import CredentialError

FORMAT_VERSION = 1
_FIELDS = ("version", "server", "device_id", "branch_id", "token", "enrolled_at")


@dataclass(frozen=True)
class DeviceCredential:
    server: str
    device_id: str
    branch_id: str
    token: str
    enrolled_at: float
    version: int = FORMAT_VERSION


def _key_path(path: Path) -> Path:
    return path.with_name(path.name + ".key")


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_private(path: Path, what: str) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CredentialError(f"no {what} at {path}; enrol this kiosk with --enrol-code") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialError(f"the {what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise CredentialError(f"the {what} {path} is readable by others (mode {oct(st.st_mode & 0o777)}); "
                              f"it must be 0600 - enrol again")
    if st.st_size > 64 * 1024:
        raise CredentialError(f"the {what} {path} is too large to be a credential")
    return path.read_bytes()


def _mac(key: bytes, body: dict[str, Any]) -> str:
    canonical = json.dumps([body.get(k) for k in _FIELDS], separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def save(path: Path, credential: DeviceCredential) -> None:
    """Store a credential (a new key each time, so an old copy of the file stops verifying)."""
    key = secrets.token_bytes(32)
    body = asdict(credential)
    body["mac"] = _mac(key, body)
    _write_private(_key_path(path), key.hex().encode())
    _write_private(path, json.dumps(body, indent=1).encode())


def load(path: Path) -> DeviceCredential:
    """Read and verify; raises CredentialError saying what is wrong."""
    try:
        key = bytes.fromhex(_read_private(_key_path(path), "credential key").decode().strip())
    except ValueError:
        raise CredentialError(f"the credential key {_key_path(path)} is corrupt; enrol again") from None
    raw = _read_private(path, "credential file")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CredentialError(f"the credential file {path} is not valid JSON (tampered or truncated)") from None
    if not isinstance(body, dict) or set(body) != {*_FIELDS, "mac"}:
        raise CredentialError(f"the credential file {path} has unexpected fields (tampered)")
    if not isinstance(body["mac"], str) or not hmac.compare_digest(body["mac"], _mac(key, body)):
        raise CredentialError(f"the credential file {path} was modified after enrolment (MAC mismatch)")
    if body["version"] != FORMAT_VERSION:
        raise CredentialError(f"the credential file {path} has version {body['version']}, "
                              f"this app reads {FORMAT_VERSION}")
    try:
        return DeviceCredential(server=str(body["server"]), device_id=str(body["device_id"]),
                                branch_id=str(body["branch_id"]), token=str(body["token"]),
                                enrolled_at=float(body["enrolled_at"]))
    except (TypeError, ValueError):
        raise CredentialError(f"the credential file {path} has a malformed field") from None


def new(server: str, device_id: str, branch_id: str, token: str) -> DeviceCredential:
    return DeviceCredential(server=server.rstrip("/"), device_id=device_id, branch_id=branch_id,
                            token=token, enrolled_at=time.time())
