"""Queue metrics computed from the queue log over a sliding window, and their Prometheus text.

Per queue, for events with `now - window_s < at <= now`:
  offered        tickets that entered the queue (first entries, transfers in, call-backs due)
  answered       accepts;  abandoned: customers who left while waiting or ringing
  service_level  answered within `service_level_s` / (answered + abandoned); None when both are 0
  asa_s          average speed of answer: mean `waited_s` of the accepts
  abandon_rate   abandoned / (answered + abandoned)
  aht_s          average handle time: mean `handle_s` of completes and transfers out (a leg each)
A call answered within the window but entered before it counts: the window is about answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cloudbank.platform.queue_log import QueueEvent


@dataclass
class QueueMetrics:
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    completed: int = 0
    timeouts: int = 0
    declines: int = 0
    transfers_out: int = 0
    callbacks_booked: int = 0
    service_level: float | None = None
    asa_s: float | None = None
    abandon_rate: float | None = None
    aht_s: float | None = None
    avg_abandon_wait_s: float | None = None

    def public(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def compute(events: Iterable[QueueEvent], *, now: float, window_s: float,
            service_level_s: float) -> dict[str, QueueMetrics]:
    """Metrics per queue from queue-log events (any order)."""
    out: dict[str, QueueMetrics] = {}
    waits: dict[str, list[float]] = {}
    handles: dict[str, list[float]] = {}
    abandon_waits: dict[str, list[float]] = {}
    for ev in events:
        if not now - window_s < ev.at <= now:
            continue
        m = out.setdefault(ev.queue, QueueMetrics())
        if ev.event == "enter":
            m.offered += 1
        elif ev.event == "accept":
            m.answered += 1
            waited = ev.num("waited_s")
            waits.setdefault(ev.queue, []).append(waited)
            if waited <= service_level_s:
                m.answered_in_sl += 1
        elif ev.event == "abandon":
            m.abandoned += 1
            abandon_waits.setdefault(ev.queue, []).append(ev.num("waited_s"))
        elif ev.event == "complete":
            m.completed += 1
            handles.setdefault(ev.queue, []).append(ev.num("handle_s"))
        elif ev.event == "transfer":
            m.transfers_out += 1
            handles.setdefault(ev.queue, []).append(ev.num("handle_s"))
        elif ev.event == "timeout":
            m.timeouts += 1
        elif ev.event == "decline":
            m.declines += 1
        elif ev.event == "callback" and ev.data.get("action") == "book":
            m.callbacks_booked += 1
    for queue, m in out.items():
        settled = m.answered + m.abandoned
        if settled:
            m.service_level = m.answered_in_sl / settled
            m.abandon_rate = m.abandoned / settled
        if waits.get(queue):
            m.asa_s = sum(waits[queue]) / len(waits[queue])
        if handles.get(queue):
            m.aht_s = sum(handles[queue]) / len(handles[queue])
        if abandon_waits.get(queue):
            m.avg_abandon_wait_s = sum(abandon_waits[queue]) / len(abandon_waits[queue])
    return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_GAUGES = (
    ("service_level", "Share answered within the service-level time, over the window"),
    ("asa_s", "Average speed of answer in seconds, over the window"),
    ("abandon_rate", "Share of settled calls that were abandoned, over the window"),
    ("aht_s", "Average handle time in seconds, over the window"),
)
_COUNTS = ("offered", "answered", "abandoned", "completed", "timeouts", "declines", "transfers_out",
           "callbacks_booked")


def prometheus(metrics: Mapping[str, QueueMetrics], snapshot: Mapping[str, Any], window_s: float) -> str:
    """The Prometheus text exposition (version 0.0.4) of queue metrics and the live snapshot."""
    lines: list[str] = []
    queues = sorted(set(metrics) | set(snapshot.get("queues", {})))
    for name, text in _GAUGES:
        lines += [f"# HELP cloudbank_queue_{name} {text} ({int(window_s)} s).",
                  f"# TYPE cloudbank_queue_{name} gauge"]
        for q in queues:
            value = getattr(metrics.get(q, QueueMetrics()), name)
            if value is not None:
                lines.append(f'cloudbank_queue_{name}{{queue="{_label(q)}"}} {value:.6g}')
    for name in _COUNTS:
        lines += [f"# HELP cloudbank_queue_{name} Queue-log count of {name} over the window.",
                  f"# TYPE cloudbank_queue_{name} gauge"]
        for q in queues:
            count = getattr(metrics.get(q, QueueMetrics()), name)
            lines.append(f'cloudbank_queue_{name}{{queue="{_label(q)}"}} {count}')
    lines += ["# HELP cloudbank_queue_waiting Tickets waiting now.", "# TYPE cloudbank_queue_waiting gauge"]
    live = snapshot.get("queues", {})
    for q in queues:
        lines.append(f'cloudbank_queue_waiting{{queue="{_label(q)}"}} {live.get(q, {}).get("waiting", 0)}')
    lines += ["# HELP cloudbank_queue_longest_wait_s Longest current wait in seconds.",
              "# TYPE cloudbank_queue_longest_wait_s gauge"]
    for q in queues:
        lines.append(f'cloudbank_queue_longest_wait_s{{queue="{_label(q)}"}} '
                     f'{live.get(q, {}).get("longest_wait_s", 0)}')
    lines += ["# HELP cloudbank_queue_tellers Tellers with the queue's skill, by state.",
              "# TYPE cloudbank_queue_tellers gauge"]
    for q in queues:
        for state, n in live.get(q, {}).get("tellers", {}).items():
            lines.append(f'cloudbank_queue_tellers{{queue="{_label(q)}",state="{state}"}} {n}')
    return "\n".join(lines) + "\n"
