"""`cloudbank kiosk`: its flags and the command (registered by cloudbank.platform.cli.build_parser).

Kept apart from kiosk_app so that building the CLI parser does not import aiortc.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, help="the cloudbank server's base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--enrol-code", help="a one-time enrolment code (first start, or to enrol again)")
    p.add_argument("--kiosk-data", type=Path, default=Path("kiosk-data"),
                   help="folder for the device credential and the playlist cache (default ./kiosk-data)")
    p.add_argument("--name", default="", help="this kiosk's name shown to admins (default kiosk-<hostname>)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", help="a v4l2 camera device, e.g. /dev/video0")
    source.add_argument("--video", type=Path, help="a video file to send instead of a camera (loops)")
    p.add_argument("--audio", type=Path, help="a WAV or other audio file to send instead of a microphone (loops)")
    p.add_argument("--microphone", help="an ALSA device (default, hw:0) or 'pulse'")
    p.add_argument("--headless", action="store_true", help="no window: log each step (scriptable)")
    p.add_argument("--service", help="serve one customer for this service code, then exit (0 = served)")
    p.add_argument("--answer-forms", choices=["yes", "no"], default="yes",
                   help="headless: confirm (yes) or decline (no) every pushed form")
    p.add_argument("--id-card", type=Path, help="an ID-card image file (stand-in for the card reader),"
                   " sent to the teller once the call is up")
    p.add_argument("--signature", type=Path, help="headless: a PNG to send as the signature (default: drawn)")
    p.add_argument("--rating", type=int, choices=range(1, 6), metavar="N",
                   help="headless: rate the call N (1-5) when it ends (default: skip the rating)")
    p.add_argument("--rating-comment", default="", help="headless: the comment sent with --rating")
    p.add_argument("--ice-address", action="append", default=[],
                   help="gather ICE candidates only on this address (repeatable; default: all "
                        "interfaces, or 127.0.0.1 when the server is on loopback)")
    p.add_argument("--heartbeat-s", type=float, default=30.0, help="seconds between heartbeats (default 30)")
    p.add_argument("--max-wait-s", type=float, default=1800.0, help="leave the queue after this long")
    p.add_argument("--gui-port", type=int, default=0, help="port of the local kiosk page (default: any free)")


def command(args: argparse.Namespace, _config: Any) -> int:
    from cloudbank.kiosk_client.errors import KioskError
    from cloudbank.kiosk_client.kiosk_app import KioskOptions, run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = KioskOptions(
        server=args.server.rstrip("/"), data=args.kiosk_data, enrol_code=args.enrol_code, name=args.name,
        camera=args.camera, video=args.video, audio=args.audio, microphone=args.microphone,
        headless=args.headless, service=args.service, answer_forms=args.answer_forms == "yes",
        id_card=args.id_card, signature=args.signature, rating=args.rating, rating_comment=args.rating_comment,
        ice_addresses=tuple(args.ice_address),
        heartbeat_s=args.heartbeat_s, max_wait_s=args.max_wait_s, gui_port=args.gui_port)

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run(options, stop)

    try:
        return asyncio.run(go())
    except KioskError as exc:
        # One line a person can act on (a wrong code, a tampered credential, an unreachable server).
        print(f"cloudbank kiosk: error: {exc}", file=sys.stderr)
        return 2
