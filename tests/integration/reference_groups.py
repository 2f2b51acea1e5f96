"""Independent reference of dmpflow's groups and patterns (docs/PATTERNS.md),
written from that document with pandas, not from the C code.

Running group statistics: a pandas groupby over every decoded event.
Windowed group statistics: per partition, in offset order, the stream time
advances and each (event, window) pair whose window has closed on that
partition (end + grace <= stream time) is late; the others are kept, and a
window is emitted when it closed on every partition that has events (the
least final stream time). Patterns are then mined from those windows and
from the key window results of reference.compute().
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from reference import Measure, Reference, Window


@dataclass(frozen=True)
class Group:
    name: str
    field: str | None = None
    bucket_measure: str | None = None
    bucket_width: float = 0.0
    measures: tuple[str, ...] = ()  # empty: all
    windows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pattern:
    name: str
    kind: str  # topk | anomaly | threshold
    window: str
    measure: str
    source: str = "key"  # or group:NAME
    stat: str = "mean"
    k: int = 1
    order: str = "desc"
    z: float = 3.0
    min_count: int = 5
    above: float | None = None
    below: float | None = None
    consecutive: int = 1


@dataclass
class GroupsReference:
    # (group, value, measure) -> running statistics
    running: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (group, window, start, value, measure) -> windowed statistics
    windowed: dict[tuple[str, str, int, str, str], dict[str, Any]] = field(default_factory=dict)
    # (pattern, start, subject) -> pattern record fields
    patterns: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    late_group_pairs: int = 0


def bucket_label(x: float, width: float) -> str:
    """floor(x / width) * width: its digits when integral, else the shortest
    %g that reads back."""
    b = math.floor(x / width) * width
    if b == 0:
        b = 0.0
    if b == math.floor(b) and abs(b) < 1e15:
        return "%.0f" % b
    for prec in range(1, 18):
        s = "%.*g" % (prec, b)
        if float(s) == b:
            return s
    return repr(b)


def _stats(values: Sequence[float]) -> dict[str, Any]:
    s = pd.Series(values, dtype="float64")
    n = len(s)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / n
    return {"count": n, "sum": math.fsum(values), "mean": mean, "variance": var,
            "stddev": math.sqrt(var), "min": float(s.min()), "max": float(s.max())}


def _stat_value(stat: str, st: Mapping[str, Any]) -> float:
    return float(st["count"]) if stat == "count" else float(st[stat])


def compute_groups(events: Iterable[tuple[int, str, Mapping[str, Any]]], windows: Sequence[Window],
                   measures: Sequence[Measure], groups: Sequence[Group],
                   patterns: Sequence[Pattern], keys: Reference) -> GroupsReference:
    events = list(events)
    out = GroupsReference()
    wins = {w.name: w for w in windows}
    all_measures = tuple(m.name for m in measures)
    by_name = {m.name: m for m in measures}

    # one row per (event, group definition) with its group value
    rows = []
    for pos, (part, _key, ev) in enumerate(events):
        vals = {m.name: m.value(ev) for m in measures}
        for g in groups:
            if g.field:
                v = ev.get(g.field)
                value = "" if v is None else str(v)
            else:
                x = vals[g.bucket_measure]
                if x is None:
                    continue
                value = bucket_label(x, g.bucket_width)
            rows.append({"pos": pos, "part": part, "group": g.name, "value": value,
                         "ts": ev["ts"], **{f"m:{n}": vals[n] for n in all_measures}})
    df = pd.DataFrame(rows)

    # running statistics: groupby over everything
    for g in groups:
        gdf = df[df["group"] == g.name]
        for value, sub in gdf.groupby("value", sort=True):
            last = int(sub["ts"].max())
            for mname in g.measures or all_measures:
                vs = [float(x) for x in sub[f"m:{mname}"] if x is not None and not pd.isna(x)]
                if vs:
                    out.running[(g.name, value, mname)] = {**_stats(vs), "last_update": last}

    # windowed: per-partition lateness, then the windows closed everywhere
    st: dict[int, int] = {}
    kept: dict[tuple[str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["pos"]):  # offset order per partition
        g = next(x for x in groups if x.name == r["group"])
        p = r["part"]
        # the stream time after this event (every group row of an event sees the same)
        st[p] = max(st.get(p, r["ts"]), r["ts"])
        for wname in g.windows:
            w = wins[wname]
            for s in w.starts(r["ts"]):
                if s + w.size_ms + w.grace_ms <= st[p]:
                    out.late_group_pairs += 1
                    continue
                kept[(g.name, wname, s, r["value"])].append(r)
    final_st = {}
    for part, _key, ev in events:
        final_st[part] = max(final_st.get(part, ev["ts"]), ev["ts"])
    watermark = min(final_st.values())
    for (gname, wname, s, value), rs in kept.items():
        w = wins[wname]
        if s + w.size_ms + w.grace_ms > watermark:
            continue
        g = next(x for x in groups if x.name == gname)
        last = max(r["ts"] for r in rs)
        for mname in g.measures or all_measures:
            vs = [r[f"m:{mname}"] for r in rs if r[f"m:{mname}"] is not None]
            if vs:
                out.windowed[(gname, wname, s, value, mname)] = {**_stats(vs), "last_update": last}

    # patterns
    for pat in patterns:
        w = wins[pat.window]
        # subjects per window start, in start order: {start: {subject: stats}}
        per_start: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        if pat.source == "key":
            for (wname, key, s, mname), rec in keys.results.items():
                if wname == pat.window and mname == pat.measure:
                    per_start[s][key] = rec
        else:
            gname = pat.source[len("group:"):]
            for (g2, wname, s, value, mname), rec in out.windowed.items():
                if g2 == gname and wname == pat.window and mname == pat.measure:
                    per_start[s][value] = rec
        if pat.kind == "topk":
            for s, subj in per_start.items():
                if s + w.size_ms + w.grace_ms > watermark:
                    continue  # not closed on every partition: not ranked
                desc = pat.order == "desc"
                ranked = sorted(subj.items(), key=lambda kv: (
                    -_stat_value(pat.stat, kv[1]) if desc else _stat_value(pat.stat, kv[1]),
                    kv[0].encode()))
                for rank, (name, rec) in enumerate(ranked[:pat.k], 1):
                    out.patterns[(pat.name, s, name)] = {
                        "rank": rank, "value": _stat_value(pat.stat, rec), "count": rec["count"],
                        "observations": len(subj), "direction": pat.order}
            continue
        history: dict[str, list[float]] = defaultdict(list)
        streak: dict[str, int] = defaultdict(int)
        for s in sorted(per_start):
            for name, rec in sorted(per_start[s].items()):
                x = _stat_value(pat.stat, rec)
                if pat.kind == "anomaly":
                    prev = history[name]
                    if len(prev) >= pat.min_count:
                        mean = math.fsum(prev) / len(prev)
                        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in prev) / len(prev))
                        if sd > 0 and abs((x - mean) / sd) > pat.z:
                            z = (x - mean) / sd
                            out.patterns[(pat.name, s, name)] = {
                                "rank": 0, "value": x, "score": z, "mean": mean, "stddev": sd,
                                "count": rec["count"], "observations": len(prev),
                                "direction": "high" if z > 0 else "low"}
                    prev.append(x)
                else:
                    above = pat.above is not None and x > pat.above
                    below = pat.below is not None and x < pat.below
                    if not (above or below):
                        streak[name] = 0
                        continue
                    streak[name] += 1
                    if streak[name] >= pat.consecutive:
                        bound = pat.above if above else pat.below
                        out.patterns[(pat.name, s, name)] = {
                            "rank": 0, "value": x, "score": x - bound, "count": rec["count"],
                            "observations": streak[name],
                            "direction": "above" if above else "below"}
    return out
