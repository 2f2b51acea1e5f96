"""Independent reference implementation of dmpflow's window semantics.

This is deliberately written from the specification (shared/DESIGN.md and the
semantics documented in docs/WINDOWS.md), not from the C code, and
deliberately naive: every window keeps the full list of values that reached
it, statistics are computed at the end with a two-pass formula, and sliding
windows are recomputed from the buffered records.  It is the oracle the
integration tests compare the daemon's published results against.

Semantics, per input partition, for each event in offset order (the
session and sliding rules are Kafka Streams 3.9's, read from
KStreamSessionWindowAggregate, KStreamSlidingWindowAggregate and the RocksDB
stores under them; docs/WINDOWS.md):

1. ``stream_time = max(stream_time, event_time)``.
2. Every window closed at that stream time is emitted (once):
   tumbling / hopping / sliding ``[s, e)`` when ``stream_time >= e + grace``;
   a session ``[start, last + 1)`` when ``stream_time >= last + 1 + gap + grace``.
3. The event is applied:
   * tumbling size S: its window starts at ``floor(t / S) * S``; hopping size S
     advance A: every ``w`` multiple of A with ``w <= t < w + S``. It updates
     each of its windows still open; if none is open it is late.
   * session gap G: it merges with every session of its key that Kafka
     Streams' session store finds: ``last >= t - G``, ``start <= t + G`` and
     ``last > st_before - G - grace`` (the store's retention, G + grace,
     counted from the largest session end written, which is the stream time
     before this event). It is late if the merged session's ``last <
     stream_time - G - grace``. A session's sessions close in order of last.
   * sliding (time difference D): Kafka Streams' algorithm, step by step
     (``_sliding_event``): its windows ``[s, s + D]`` live in a store that
     finds a window while ``s > max(largest start written, st - D) - (2D +
     grace)``; the event is dropped if ``t + D < st - grace``, else it goes
     into each found window containing it that is open (``s + D >= st -
     grace``), creates its left window ``[t - D, t]`` from the latest window
     that ends before t, the right window of the record before it, and its
     own right window ``[t + 1, t + 1 + D]`` from the aggregate of the
     latest window containing it, as Kafka Streams does. It is late if it
     went into no window.
   A late event updates nothing and is counted against its key: the key's
   next result of that window definition carries the count in ``late``
   (and resets it), even if that window emits no record because all its
   measures were undefined.
4. A measure is ``sum_i a_i * x_i``; if a field is null it is undefined for
   that event and updates nothing.

Output: one record per (window definition, key, start, measure) with count
>= 1, in emission order; with ``idle_end`` every window still open at the end
is emitted too (an idle partition's stream time keeps advancing).
stddev is the population standard deviation.
"""

from __future__ import annotations

import heapq
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
    kind: str  # "tumbling" | "hopping" | "sliding" | "session"
    size_ms: int = 0  # tumbling, hopping: size; sliding: time difference D
    grace_ms: int = 0
    advance_ms: int | None = None  # hopping only
    gap_ms: int = 0  # session only
    measures: tuple[str, ...] = ()  # empty: all measures

    def __post_init__(self) -> None:
        if self.kind not in ("tumbling", "hopping", "sliding", "session"):
            raise ValueError(f"unknown window kind {self.kind!r}")
        if self.grace_ms < 0:
            raise ValueError("bad grace")
        if self.kind == "session":
            if self.gap_ms <= 0:
                raise ValueError("session window needs gap_ms > 0")
        elif self.size_ms <= 0:
            raise ValueError("bad window size")
        if self.kind == "hopping" and (not self.advance_ms or self.advance_ms <= 0):
            raise ValueError("hopping window needs advance_ms > 0")

    def starts(self, t: int) -> list[int]:
        """All window starts containing event time t (tumbling, hopping), by
        brute enumeration."""
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
    # window name -> Kafka Streams' dropped-records count: (event, closed
    # window) pairs for tumbling / hopping, late events for sessions, late
    # events plus (event, closed window) updates skipped for sliding windows
    late_pairs: dict[str, int] = field(default_factory=dict)
    # events late for at least one window definition
    late_events: int = 0
    # window name -> events late (updating none of its windows)
    late_by_window: dict[str, int] = field(default_factory=dict)
    # (partition, position in the partition) -> names of the windows it was late for
    late_positions: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    # measure name -> events for which the measure was undefined
    undefined: dict[str, int] = field(default_factory=dict)
    # partition -> final stream time
    stream_time: dict[int, int] = field(default_factory=dict)
    # windows updated but still open at the end -> not emitted
    open_at_end: int = 0


class _Partition:
    """The state of one partition: open windows per definition and key."""

    def __init__(self) -> None:
        self.st: int | None = None
        # fixed windows: (wi, key, start) -> {measure: [values]}
        self.fixed: dict[tuple[int, str, int], dict[str, list[float]]] = {}
        # sessions: (wi, key) -> open sessions [start, last, {measure: [values]}]
        self.sessions: dict[tuple[int, str], list[list[Any]]] = defaultdict(list)
        # sliding: (wi, key) -> {start: [largest time, {measure: [values]}, emitted]}
        self.slides: dict[tuple[int, str], dict[int, list[Any]]] = defaultdict(dict)
        # sliding: wi -> the largest window start written (the store's time)
        self.top: dict[int, int] = {}
        # (close time, start, kind, id): what may close when; entries are
        # checked again when popped (a session may have grown since)
        self.due: list[tuple[int, int, str, tuple[Any, ...]]] = []
        # session / sliding (wi, key) -> the close time it is due at in `due`
        self.due_at: dict[tuple[int, str], int] = {}


def compute(
    events: Iterable[tuple[int, str, Mapping[str, Any]]],
    windows: Sequence[Window],
    measures: Sequence[Measure],
    time_field: str = "ts",
    idle_end: bool = False,
) -> Reference:
    """Compute the expected results.

    ``events``: (partition, key, event fields) in per-partition offset order
    (events of different partitions may be interleaved arbitrarily).
    ``idle_end``: the partitions go idle at the end, so every window closes.
    """
    by_name = {m.name: m for m in measures}
    wm: list[list[Measure]] = [[by_name[n] for n in (w.measures or tuple(by_name))] for w in windows]

    results: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    pending_late: dict[tuple[int, str], int] = defaultdict(int)  # (wi, key) -> late count
    late_pairs = {w.name: 0 for w in windows}
    late_by_window = {w.name: 0 for w in windows}
    late_positions: dict[tuple[int, int], list[str]] = {}
    undefined = {m.name: 0 for m in measures}
    parts: dict[int, _Partition] = {}
    position: dict[int, int] = defaultdict(int)

    def emit(wi: int, key: str, start: int, end: int, vals: Mapping[str, list[float]]) -> None:
        w = windows[wi]
        late = pending_late.pop((wi, key), 0)
        for m in wm[wi]:
            v = vals.get(m.name, [])
            if not v:
                continue
            k = (w.name, key, start, m.name)
            assert k not in results, f"{k} emitted twice (key in two partitions?)"
            rec: dict[str, Any] = {"window": w.name, "kind": w.kind, "key": key, "start": start,
                                   "end": end, "measure": m.name, "late": late, "final": True}
            rec.update(stats_of(v))
            results[k] = rec

    def seen_from(p: _Partition, wi: int) -> float:
        """Sliding: the store finds windows with start >= this."""
        w = windows[wi]
        observed = max(p.top.get(wi, -math.inf), p.st - w.size_ms)
        return observed - (2 * w.size_ms + w.grace_ms) + 1

    def next_close(p: _Partition, wi: int, key: str) -> int | None:
        w = windows[wi]
        if w.kind == "session":
            sess = p.sessions[(wi, key)]
            return min(x[1] for x in sess) + 1 + w.gap_ms + w.grace_ms if sess else None
        todo = [s for s, x in p.slides[(wi, key)].items() if not x[2]]
        return min(todo) + w.size_ms + 1 + w.grace_ms if todo else None

    def schedule(p: _Partition, wi: int, key: str) -> None:
        c = next_close(p, wi, key)
        if c is None:
            p.due_at.pop((wi, key), None)
        elif p.due_at.get((wi, key)) != c:
            p.due_at[(wi, key)] = c
            heapq.heappush(p.due, (c, 0, "k", (wi, key)))

    def close(p: _Partition, st: float) -> None:
        """Emit every window closed at stream time st (inf: all)."""
        while p.due and p.due[0][0] <= st:
            c, _, kind, ident = heapq.heappop(p.due)
            if kind == "f":
                if ident in p.fixed:
                    wi, key, s = ident
                    emit(wi, key, s, s + windows[wi].size_ms, p.fixed.pop(ident))
                continue
            if p.due_at.get(ident) != c:
                continue  # stale: rescheduled since
            del p.due_at[ident]
            wi, key = ident
            w = windows[wi]
            if w.kind == "session":
                sess = p.sessions[(wi, key)]
                # in order of last (then start): the order they close in
                for x in sorted(sess, key=lambda x: (x[1], x[0])):
                    if x[1] + 1 + w.gap_ms + w.grace_ms <= st:
                        sess.remove(x)
                        emit(wi, key, x[0], x[1] + 1, x[2])
            else:
                slides = p.slides[(wi, key)]
                for s in sorted(slides):
                    x = slides[s]
                    if not x[2] and s + w.size_ms + 1 + w.grace_ms <= st:
                        x[2] = True
                        # a window no defined value reached emits nothing and
                        # takes no late count
                        if any(x[1].values()):
                            emit(wi, key, s, s + w.size_ms + 1, x[1])
                if st != math.inf:  # what the store no longer finds is gone
                    lim = seen_from(p, wi)
                    for s in [s for s in slides if s < lim]:
                        assert slides[s][2]
                        del slides[s]
            schedule(p, wi, key)

    def session_event(p: _Partition, wi: int, key: str, t: int, st_before: int | None,
                      mv: dict[str, float | None]) -> bool:
        """Returns whether the event is late."""
        w = windows[wi]
        sess = p.sessions[(wi, key)]
        found_after = -math.inf if st_before is None else st_before - w.gap_ms - w.grace_ms
        found = [x for x in sess
                 if x[1] > found_after and x[1] >= t - w.gap_ms and x[0] <= t + w.gap_ms]
        mstart = min([t] + [x[0] for x in found])
        mlast = max([t] + [x[1] for x in found])
        if mlast < p.st - w.gap_ms - w.grace_ms:
            late_pairs[w.name] += 1
            return True
        vals: dict[str, list[float]] = defaultdict(list)
        for x in found:
            for n, v in x[2].items():
                vals[n].extend(v)
            sess.remove(x)
        for n, v in mv.items():
            if v is not None:
                vals[n].append(v)
        sess.append([mstart, mlast, vals])
        schedule(p, wi, key)
        return False

    def sliding_event(p: _Partition, wi: int, key: str, t: int,
                      mv: dict[str, float | None]) -> bool:
        """KStreamSlidingWindowAggregate.process (processReverse, then
        createWindows). Returns whether the event is late."""
        w = windows[wi]
        d = w.size_ms
        close_time = p.st - w.grace_ms  # windows ending before this are closed
        if t + d < close_time:
            late_pairs[w.name] += 1
            return True
        slides = p.slides[(wi, key)]
        first = max(t - 2 * d, seen_from(p, wi))
        written: list[int] = []
        went = 0

        def add(vals: dict[str, list[float]]) -> dict[str, list[float]]:
            out = {n: list(v) for n, v in vals.items()}
            for n, v in mv.items():
                if v is not None:
                    out.setdefault(n, []).append(v)
            return out

        def update(s: int, old: list[Any] | None) -> int:
            """updateWindowAndForward: into window s if open; 1 if so."""
            if s + d < close_time:
                late_pairs[w.name] += 1
                return 0
            if old is None:
                slides[s] = [t, add({}), False]
            else:
                slides[s] = [max(t, old[0]), add(old[1]), False]
            written.append(s)
            return 1

        right_src = None
        right_exists = left_exists = returned = False
        left_vals = None
        prev = None
        visited: set[int] = set()  # Kafka Streams' windowStartTimes
        for s in sorted((s for s in slides if first <= s <= t + 1), reverse=True):
            visited.add(s)
            largest, vals = slides[s][0], slides[s][1]
            if s == t + 1:
                right_exists = True
            elif s + d > t:
                if right_src is None:
                    right_src = (largest, {n: list(v) for n, v in vals.items()})
                went += update(s, slides[s])
            elif s + d == t:
                left_exists = True
                went += update(s, slides[s])
                if largest >= t:
                    returned = True  # a record at t already made every window
                    break
                prev = largest
            else:
                left_vals = {n: list(v) for n, v in vals.items()}
                prev = largest
                break
        if not returned:  # createWindows
            if prev is not None and prev + 1 + d >= t and (prev + 1) not in visited:
                went += update(prev + 1, None)
            if not left_exists:
                if left_vals is not None and prev >= t - d:
                    went += update(t - d, [t, left_vals, False])
                else:
                    went += update(t - d, None)
            if not right_exists and right_src is not None and right_src[0] > t:
                slides[t + 1] = [right_src[0], right_src[1], False]
                written.append(t + 1)
        if written:
            p.top[wi] = max([p.top.get(wi, -math.inf)] + written)
        if slides:
            schedule(p, wi, key)
        if not went:
            return True
        return False

    for partition, key, ev in events:
        p = parts.setdefault(partition, _Partition())
        pos = position[partition]
        position[partition] += 1
        t = int(ev[time_field])
        st_before = p.st
        p.st = t if p.st is None else max(p.st, t)
        st = p.st
        close(p, st)

        mvals = {m.name: m.value(ev) for m in measures}
        for name, v in mvals.items():
            if v is None:
                undefined[name] += 1

        late_for: list[str] = []
        for wi, w in enumerate(windows):
            names = [m.name for m in wm[wi]]
            late = False
            if w.kind in ("tumbling", "hopping"):
                any_open = False
                for s in w.starts(t):
                    if s + w.size_ms + w.grace_ms <= st:
                        late_pairs[w.name] += 1
                        continue
                    any_open = True
                    if (wi, key, s) not in p.fixed:
                        heapq.heappush(p.due, (s + w.size_ms + w.grace_ms, s, "f", (wi, key, s)))
                    win = p.fixed.setdefault((wi, key, s), {})
                    for n in names:
                        if mvals[n] is not None:
                            win.setdefault(n, []).append(mvals[n])
                late = not any_open
            elif w.kind == "session":
                late = session_event(p, wi, key, t, st_before, {n: mvals[n] for n in names})
            else:  # sliding
                late = sliding_event(p, wi, key, t, {n: mvals[n] for n in names})
            if late:
                pending_late[(wi, key)] += 1
                late_by_window[w.name] += 1
                late_for.append(w.name)
        if late_for:
            late_positions[(partition, pos)] = late_for

    open_at_end = 0
    for p in parts.values():
        if idle_end:
            close(p, math.inf)
        open_at_end += len(p.fixed) + sum(len(x) for x in p.sessions.values())

    return Reference(
        results=results,
        late_pairs=late_pairs,
        late_events=len(late_positions),
        late_by_window=late_by_window,
        late_positions=late_positions,
        undefined=undefined,
        stream_time={k: v.st for k, v in parts.items() if v.st is not None},
        open_at_end=open_at_end,
    )
