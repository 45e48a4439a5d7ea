"""Errors of the customer-side SDK, kiosk app and phone client.

    KioskError                 root of every error the SDK raises on purpose
    ├── CredentialError        the device credential file is missing, unreadable, too open or tampered with
    ├── PlatformError          the platform refused a request; carries status, code and message
    ├── CallError              the video call could not be set up (signalling, ICE, a refused join)
    └── PlaylistError          a playlist or one of its items failed to load or verify
"""

from __future__ import annotations

from typing import Any


class KioskError(Exception):
    """Root of the SDK's own errors."""


class CredentialError(KioskError):
    """The credential file cannot be trusted; enrol again with a new code."""


class PlatformError(KioskError):
    """A refusal from the platform (or a network failure, status 0)."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}

    @property
    def retryable(self) -> bool:
        """Network failures and server errors may succeed later; 4xx refusals will not."""
        return self.status == 0 or self.status >= 500 or self.status == 429


class CallError(KioskError):
    """Joining or keeping the video call failed."""


class PlaylistError(KioskError):
    """A playlist item could not be fetched or did not match its hash."""
