"""Errors of the video node.

    CloudbankError (cloudbank.platform.errors)
    └── VideoError                  root of the video node's own errors
        ├── AiortcIncompatible      the installed aiortc/aioice lacks a hook forwarding or ICE needs:
        │                           pin aiortc==1.16.0 or update forwarding.py / ice.py
        └── SignallingError         a client's signalling message or join was refused; `code` goes
            │                       to the client as {"type": "error", "code", "message"}
            ├── BadMessage          not JSON, not an object, unknown type, bad or missing fields
            ├── BadSdp              an offer aiortc cannot parse or that does not fit the party
            ├── RoomFull            a second customer or teller (another client) in a 1:1 room
            ├── Draining            the node takes no new calls (it is shutting down)
            ├── NotAllowed          a supervisor's talk (whisper, barge-in) the platform did not allow
            ├── Flooding            too many messages too fast
            ├── IceTimeout          the client never completed ICE/DTLS
            └── Replaced            the same party joined again on another connection
"""

from __future__ import annotations

from cloudbank.platform.errors import CloudbankError


class VideoError(CloudbankError):
    """Root of the video node's errors."""


class AiortcIncompatible(VideoError):
    """aiortc/aioice internals changed: the message names the missing hook."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; cloudbank.video needs aiortc==1.16.0 (see video/forwarding.py and ice.py)")


class SignallingError(VideoError):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_message(self) -> dict[str, str]:
        return {"type": "error", "code": self.code, "message": self.message}


class BadMessage(SignallingError):
    code = "bad_message"


class BadSdp(SignallingError):
    code = "bad_sdp"


class RoomFull(SignallingError):
    code = "room_full"


class NotAllowed(SignallingError):
    code = "not_allowed"


class Draining(SignallingError):
    code = "draining"


class Flooding(SignallingError):
    code = "too_many_messages"


class IceTimeout(SignallingError):
    code = "ice_timeout"


class Replaced(SignallingError):
    code = "replaced"
