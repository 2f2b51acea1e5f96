"""Independent reference implementation of dmpflow's window semantics.

This is deliberately written from the specification (shared/DESIGN.md and the
binary's contract), not from the C code, and deliberately naive: every window
keeps the full list of values that reached it and the statistics are computed
at the end with a two-pass formula.  It is the oracle the integration tests
compare the daemon's published results against.

Semantics implemented (Kafka Streams' rule), per input partition, in offset
order:

* ``stream_time = max(stream_time, event_time)`` -- updated *before* the
  lateness check, including the current event.
* tumbling size S: the event's window starts at ``floor(t / S) * S``;
  hopping size S advance A: every ``w`` that is a multiple of A with
  ``w <= t < w + S``.
* a window ``[s, e)`` of the partition is closed when
  ``stream_time >= e + grace``.  The event updates each of its windows that
  is still open; closed ones are not updated (the event is late for them).
* a measure is ``sum_i a_i * x_i`` in double arithmetic; if any of its fields
  is null or absent it is undefined for that event and updates nothing.
* output: one result per (key, window definition, window start, measure)
  whose window is closed at the end (``e + grace <= final stream time`` of
  the partition) and whose count is >= 1.  stddev is the population
  standard deviation.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["Measure", "Window", "Reference", "compute", "stats_of"]


# --------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# One signed term: [sign] [number '*'] field   or   [sign] number '*' field
_TERM = re.compile(
    rf"\s*(?P<sign>[+-])?\s*(?:(?P<coef>{_NUM})\s*\*\s*)?(?P<field>{_IDENT})\s*"
)


@dataclass(frozen=True)
class Measure:
    """A named linear combination of numeric event fields."""

    name: str
    terms: tuple[tuple[float, str], ...]

    @classmethod
    def parse(cls, name: str, expr: str) -> "Measure":
        """Parse ``0.7*price + 0.3*quantity`` / ``1*clicks`` / ``price``."""
        terms: list[tuple[float, str]] = []
        pos = 0
        first = True
        while pos < len(expr):
            m = _TERM.match(expr, pos)
            if not m or m.end() == pos:
                raise ValueError(f"cannot parse measure {name!r}: {expr!r} at {pos}")
            sign = m.group("sign")
            if sign is None and not first:
                raise ValueError(f"missing operator in {expr!r} at {pos}")
            coef = float(m.group("coef")) if m.group("coef") else 1.0
            if sign == "-":
                coef = -coef
            terms.append((coef, m.group("field")))
            pos = m.end()
            first = False
        if not terms:
            raise ValueError(f"empty measure {name!r}")
        return cls(name, tuple(terms))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f in self.terms)

    def value(self, event: Mapping[str, Any]) -> float | None:
        """f(x) = sum a_i * x_i, or None if a field is null or absent."""
        total = 0.0
        for i, (coef, fname) in enumerate(self.terms):
            x = event.get(fname)
            if x is None:
                return None
            term = coef * float(x)
            total = term if i == 0 else total + term
        return total


# --------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A window definition: ``[window NAME]`` of the config."""

    name: str
    kind: str  # "tumbling" | "hopping"
    size_ms: int
    grace_ms: int = 0
    advance_ms: int | None = None  # hopping only
    measures: tuple[str, ...] = ()  # empty: all measures

    def __post_init__(self) -> None:
        if self.kind not in ("tumbling", "hopping"):
            raise ValueError(f"unknown window kind {self.kind!r}")
        if self.size_ms <= 0 or self.grace_ms < 0:
            raise ValueError("bad window size/grace")
        if self.kind == "hopping" and (not self.advance_ms or self.advance_ms <= 0):
            raise ValueError("hopping window needs advance_ms > 0")

    def starts(self, t: int) -> list[int]:
        """All window starts containing event time t, by brute enumeration."""
        if self.kind == "tumbling":
            return [(t // self.size_ms) * self.size_ms]
        a = self.advance_ms
        assert a is not None
        latest = (t // a) * a  # largest multiple of A that is <= t
        out = []
        w = latest
        while w > t - self.size_ms:  # i.e. t < w + S
            out.append(w)
            w -= a
        return sorted(out)


# --------------------------------------------------------------------------
# Statistics (two-pass, on the full list of values)
# --------------------------------------------------------------------------


def stats_of(values: Sequence[float]) -> dict[str, float | int]:
    n = len(values)
    assert n >= 1
    total = math.fsum(values)
    mean = total / n
    m2 = math.fsum((v - mean) * (v - mean) for v in values)
    return {
        "count": n,
        "sum": total,
        "min": min(values),
        "max": max(values),
        "mean": mean,
        "stddev": math.sqrt(m2 / n),
    }


# --------------------------------------------------------------------------
# The computation
# --------------------------------------------------------------------------


@dataclass
class Reference:
    """Expected results plus counters the tests use to check coverage."""

    # (window name, key, start, measure) -> WindowResult record as a dict
    results: dict[tuple[str, str, int, str], dict[str, Any]]
    # window name -> number of (event, window instance) pairs dropped as late
    late_pairs: dict[str, int] = field(default_factory=dict)
    # events with no open window left in any window definition
    late_events: int = 0
    # measure name -> events for which the measure was undefined
    undefined: dict[str, int] = field(default_factory=dict)
    # partition -> final stream time
    stream_time: dict[int, int] = field(default_factory=dict)
    # closed windows at the end that were updated but are still open -> not emitted
    open_at_end: int = 0


def compute(
    events: Iterable[tuple[int, str, Mapping[str, Any]]],
    windows: Sequence[Window],
    measures: Sequence[Measure],
    time_field: str = "ts",
) -> Reference:
    """Compute the expected results.

    ``events``: (partition, key, event fields) in per-partition offset order
    (events of different partitions may be interleaved arbitrarily).
    """
    by_name = {m.name: m for m in measures}
    win_measures: list[list[Measure]] = []
    for w in windows:
        names = w.measures or tuple(by_name)
        win_measures.append([by_name[n] for n in names])

    stream_time: dict[int, int] = {}
    # (partition, window idx, key, start, measure name) -> list of values
    values: dict[tuple[int, int, str, int, str], list[float]] = defaultdict(list)
    late_pairs = {w.name: 0 for w in windows}
    undefined = {m.name: 0 for m in measures}
    late_events = 0

    for partition, key, ev in events:
        t = int(ev[time_field])
        st = max(stream_time.get(partition, t), t)
        stream_time[partition] = st

        for m in measures:
            if m.value(ev) is None:
                undefined[m.name] += 1

        any_open = False
        for wi, w in enumerate(windows):
            for s in w.starts(t):
                e = s + w.size_ms
                if st >= e + w.grace_ms:  # closed: the event is late for it
                    late_pairs[w.name] += 1
                    continue
                any_open = True
                for m in win_measures[wi]:
                    v = m.value(ev)
                    if v is not None:
                        values[(partition, wi, key, s, m.name)].append(v)
        if not any_open:
            late_events += 1

    results: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    open_at_end = 0
    for (partition, wi, key, s, mname), vals in values.items():
        w = windows[wi]
        e = s + w.size_ms
        if e + w.grace_ms > stream_time[partition]:
            open_at_end += 1
            continue  # never closed: no final result
        k = (w.name, key, s, mname)
        assert k not in results, f"key {key!r} seen in two partitions"
        rec: dict[str, Any] = {
            "window": w.name,
            "kind": w.kind,
            "key": key,
            "start": s,
            "end": e,
            "measure": mname,
        }
        rec.update(stats_of(vals))
        results[k] = rec

    return Reference(
        results=results,
        late_pairs=late_pairs,
        late_events=late_events,
        undefined=undefined,
        stream_time=stream_time,
        open_at_end=open_at_end,
    )
