"""Whether a call's recording holds every party's tracks.

A call is a customer and a teller, each sending audio and video; a recording whose manifest lacks
one of those tracks (the teller's media never connected, a camera refused) is *incomplete*. That is
a different finding from *tampered* (a file or manifest that does not match its hash): the files
that are there can be intact and the evidence still be missing a party. The catalogue lists the
missing tracks with each recording and verify reports them.
"""

from __future__ import annotations

from typing import Any

PARTIES = ("customer", "teller")
KINDS = ("audio", "video")


def present_tracks(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """(party, kind) of every track with at least one segment, including those an earlier node left."""
    present = {(str(t.get("party")), str(t.get("kind"))) for t in manifest.get("tracks") or []
               if isinstance(t, dict) and t.get("segments")}
    present |= {(str(s.get("party")), str(s.get("kind"))) for s in manifest.get("earlier_segments") or []
                if isinstance(s, dict)}
    return present


def missing_tracks(manifest: dict[str, Any]) -> list[str]:
    """`"<party> <kind>"` for each track a call should have and this recording lacks, e.g. `"teller video"`."""
    present = present_tracks(manifest)
    return [f"{party} {kind}" for party in PARTIES for kind in KINDS if (party, kind) not in present]


def status(problems: list[str], missing: list[str]) -> str:
    """`tampered` (a hash does not match: the evidence was changed), else `incomplete` (intact files,
    but a party's tracks are missing), else `intact`."""
    if problems:
        return "tampered"
    return "incomplete" if missing else "intact"
