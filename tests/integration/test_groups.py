"""Groups and patterns end to end on the real broker, against the independent
reference (reference_groups.py, pandas): running and windowed group
statistics over several partitions, topk / anomaly / threshold patterns over
keys and over groups; then a stream with planted anomalies and a planted top
group, where exactly the planted ones must be found."""

from __future__ import annotations

import io
import json
import math
import random
import time
import urllib.request
from typing import Any

import fastavro

from reference import Measure, Window, compute
from reference_groups import Group, Pattern, bucket_label, compute_groups
from support import REPO, _strip_logical, free_port, make_config, make_events, partition_for

PARTITIONS = 3
GROUP_SCHEMA = fastavro.parse_schema(_strip_logical(json.loads(
    (REPO / "schemas" / "group_result.avsc").read_text())))
PATTERN_SCHEMA = fastavro.parse_schema(_strip_logical(json.loads(
    (REPO / "schemas" / "pattern.avsc").read_text())))


def decoder(schema):
    def decode(data: bytes) -> dict[str, Any]:
        buf = io.BytesIO(data)
        rec = fastavro.schemaless_reader(buf, schema, None)
        assert buf.tell() == len(data), "trailing bytes"
        return rec
    return decode


def sections(groups: list[Group], patterns: list[Pattern], gtopic: str, ptopic: str) -> str:
    out = []
    for g in groups:
        out += [f"[group {g.name}]"]
        if g.field:
            out.append(f"field = {g.field}")
        else:
            out += [f"bucket.measure = {g.bucket_measure}", f"bucket.width = {g.bucket_width}"]
        out += [f"measures = {', '.join(g.measures)}", f"windows = {', '.join(g.windows)}",
                f"topic = {gtopic}", ""]
    for p in patterns:
        out += [f"[pattern {p.name}]", f"kind = {p.kind}", f"window = {p.window}",
                f"source = {p.source}", f"measure = {p.measure}", f"stat = {p.stat}",
                f"k = {p.k}", f"order = {p.order}", f"z = {p.z}", f"min.count = {p.min_count}",
                f"consecutive = {p.consecutive}", f"topic = {ptopic}"]
        if p.above is not None:
            out.append(f"above = {p.above}")
        if p.below is not None:
            out.append(f"below = {p.below}")
        out.append("")
    return "\n".join(out)


def check_group_queries(port: int, published: list[dict[str, Any]]) -> None:
    """/state/groups answers what was last published for each group."""
    last = {}
    for r in published:
        if r["window"] is None:
            last[(r["group"], r["value"], r["measure"])] = r
    assert last
    for group in sorted({g for g, _v, _m in last}):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/state/groups/{group}") as resp:
            state = json.loads(resp.read())
        got = {(group, v["value"], v["measure"]): v for v in state["values"]}
        want = {k: r for k, r in last.items() if k[0] == group}
        assert set(got) == set(want), (group, sorted(set(got) ^ set(want))[:5])
        for k, w in want.items():
            assert got[k]["count"] == w["count"] and got[k]["last_update"] == w["last_update"]
            for f in ("sum", "mean", "variance", "stddev", "min", "max"):
                assert rel_close(got[k][f], w[f]), (k, f)


def rel_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def run_pipeline(kafka, dmpflow, tmp_path, src, measures, windows, groups, patterns,
                 expect_groups: int, expect_patterns: int, before_stop=None,
                 want_windowed=()):
    """Runs dmpflow over topic src until the expected numbers of group results
    and patterns arrived (at least) and every (group, window, start, value,
    measure) of want_windowed was published, stops it; returns what it
    published. (A count alone is not enough: running statistics come at
    every commit where they changed, so on a loaded machine the count was
    reached before the last windows came out.)"""
    out = kafka.topic(PARTITIONS, "out")
    gtopic = kafka.topic(1, "groups")
    ptopic = kafka.topic(1, "patterns")
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=out,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=measures,
                      windows=windows, commit_interval_ms=200)
    port = free_port()
    cfg += "\n" + sections(groups, patterns, gtopic, ptopic) + f"\n[http]\nport = {port}\n"
    greader = kafka.reader(gtopic, decode=decoder(GROUP_SCHEMA))
    preader = kafka.reader(ptopic, decode=decoder(PATTERN_SCHEMA))
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    preader.until(expect_patterns, timeout=60)
    greader.until(expect_groups, timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(want_windowed) <= {
            (r["group"], r["window"], r["start"], r["value"], r["measure"])
            for r in (rec[3] for rec in greader.records) if r["window"] is not None}:
        greader.until(len(greader.records) + 1, timeout=0.5)
    assert proc.poll() is None, f"dmpflow exited early: {proc.stderr[-2000:]}"
    if before_stop:
        time.sleep(1.0)  # a commit after the last event: running statistics published
        greader.drain(1.0)
        before_stop(port, [r[3] for r in greader.records])
    assert dmpflow.stop(proc, timeout=15) == 0
    greader.drain(2.0)
    preader.drain(1.0)
    assert not greader.errors and not preader.errors
    return [r[3] for r in greader.records], [r[3] for r in preader.records], proc


def check_groups(ref, got_groups: list[dict[str, Any]]) -> None:
    running_last: dict[tuple[str, str, str], dict[str, Any]] = {}
    windowed: dict[tuple[str, str, int, str, str], dict[str, Any]] = {}
    for r in got_groups:
        if r["window"] is None:
            running_last[(r["group"], r["value"], r["measure"])] = r  # the last one counts
        else:
            k = (r["group"], r["window"], r["start"], r["value"], r["measure"])
            assert k not in windowed, f"windowed group result {k} published twice"
            windowed[k] = r
    assert set(running_last) == set(ref.running), (
        sorted(set(running_last) ^ set(ref.running))[:10])
    assert set(windowed) == set(ref.windowed), (
        f"missing {sorted(set(ref.windowed) - set(windowed))[:5]}, "
        f"extra {sorted(set(windowed) - set(ref.windowed))[:5]}")
    for got, want in ((running_last, ref.running), (windowed, ref.windowed)):
        for k, w in want.items():
            g = got[k]
            assert g["count"] == w["count"], (k, g, w)
            assert g["last_update"] == w["last_update"], (k, g, w)
            for f in ("sum", "mean", "variance", "stddev", "min", "max"):
                assert rel_close(g[f], w[f]), (k, f, g[f], w[f])


def check_patterns(ref, got: list[dict[str, Any]]) -> None:
    by_key: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in got:
        k = (r["pattern"], r["start"], r["subject"])
        assert k not in by_key, f"pattern {k} published twice"
        by_key[k] = r
    assert set(by_key) == set(ref.patterns), (
        f"missing {sorted(set(ref.patterns) - set(by_key))[:5]}, "
        f"extra {sorted(set(by_key) - set(ref.patterns))[:5]}")
    for k, w in ref.patterns.items():
        g = by_key[k]
        for f, v in w.items():
            if isinstance(v, float):
                assert rel_close(g[f], v), (k, f, g[f], v)
            else:
                assert g[f] == v, (k, f, g[f], v)


def test_groups_and_patterns_match_reference(kafka, dmpflow, tmp_path):
    events = make_events(24_000, 77, keys=60, step_ms=10, ooo=0.05, max_delay_ms=3_000,
                         null_clicks=0.3)
    measures = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
    windows = [Window("t10", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
               Window("h20", "hopping", size_ms=20_000, advance_ms=10_000, grace_ms=1_000,
                      measures=("score",))]
    groups = [Group("seg", field="segment", windows=("t10", "h20")),
              Group("band", bucket_measure="score", bucket_width=100.0, measures=("score",),
                    windows=("t10",))]
    patterns = [
        Pattern("topseg", "topk", "t10", "score", source="group:seg", k=2),
        Pattern("lowband", "topk", "t10", "score", source="group:band", stat="count", k=1,
                order="asc"),
        Pattern("topusers", "topk", "t10", "score", stat="sum", k=3),
        Pattern("odduser", "anomaly", "t10", "score", z=2.0, min_count=3),
        Pattern("oddseg", "anomaly", "h20", "score", source="group:seg", z=1.0, min_count=3),
        Pattern("busy", "threshold", "t10", "clicks", stat="count", above=12, consecutive=2),
        Pattern("quietseg", "threshold", "t10", "score", source="group:seg", stat="mean",
                below=195.0),
    ]
    src = kafka.topic(PARTITIONS, "in")
    produced = kafka.produce(src, events, PARTITIONS)
    mlist = [Measure.parse(n, x) for n, x in measures.items()]
    keys_ref = compute(produced, windows, mlist)  # the key results patterns over keys mine
    ref = compute_groups(produced, windows, mlist, groups, patterns, keys_ref)
    n_running = len(ref.running)
    assert len(ref.windowed) > 100 and n_running >= 8
    kinds = {k[0] for k in ref.patterns}
    assert kinds == {p.name for p in patterns}, f"the data must exercise every pattern: {kinds}"

    got_groups, got_patterns, proc = run_pipeline(
        kafka, dmpflow, tmp_path, src, measures, windows, groups, patterns,
        expect_groups=len(ref.windowed) + n_running, expect_patterns=len(ref.patterns),
        before_stop=check_group_queries, want_windowed=ref.windowed)
    check_groups(ref, got_groups)
    check_patterns(ref, got_patterns)
    assert f"{ref.late_group_pairs} late group updates" in proc.stderr, proc.stderr[-1500:]


def test_planted_anomalies_and_top_group(kafka, dmpflow, tmp_path):
    """Steady values (small noise: window means within ~0.2 of 100) for 40 keys
    over 30 windows; three keys get
    a planted spike in one window each, and segment seg-top has, in every
    window, a mean far above the others: the anomaly miner must report
    exactly the three spikes (z > 20: the spikes are ~400 sigma, the noise
    never near 20), and topk k=1 exactly seg-top in every window."""
    rng = random.Random(5)
    t0 = 1_700_000_000_000
    events = []
    spikes = {("user-007", 12), ("user-021", 20), ("user-033", 27)}
    for wnd in range(30):
        for i in range(400):
            key = f"user-{i % 40:03d}"
            seg = "seg-top" if i % 40 < 4 else f"seg-{i % 3}"
            price = (300.0 if seg == "seg-top" else 100.0) + rng.uniform(-1, 1)
            if (key, wnd) in spikes:
                price += 80.0
            events.append({"user_id": key, "segment": seg, "ts": t0 + wnd * 10_000 + i * 20,
                           "price": price, "quantity": 0, "clicks": None})
    events.append({"user_id": "user-000", "segment": "seg-0", "ts": t0 + 40 * 10_000,
                   "price": 100.0, "quantity": 0, "clicks": None})  # closes everything
    for p in range(PARTITIONS):  # every partition must pass the last window too
        key = next(f"user-{i:03d}" for i in range(40)
                   if partition_for(f"user-{i:03d}", PARTITIONS) == p)
        events.append({"user_id": key, "segment": "seg-0", "ts": t0 + 40 * 10_000 + 1,
                       "price": 100.0, "quantity": 0, "clicks": None})
    measures = {"price": "1*price"}
    windows = [Window("t10", "tumbling", size_ms=10_000, grace_ms=0, measures=("price",))]
    groups = [Group("seg", field="segment", windows=("t10",))]
    patterns = [Pattern("spike", "anomaly", "t10", "price", z=20.0, min_count=5),
                Pattern("top", "topk", "t10", "price", source="group:seg", k=1)]
    src = kafka.topic(PARTITIONS, "in")
    kafka.produce(src, events, PARTITIONS)
    _, got, _ = run_pipeline(kafka, dmpflow, tmp_path, src, measures, windows, groups,
                             patterns, expect_groups=124, expect_patterns=33)
    found = {(r["subject"], (r["start"] - t0) // 10_000) for r in got if r["pattern"] == "spike"}
    assert found == spikes, found
    assert all(r["direction"] == "high" and r["score"] > 20 for r in got if r["pattern"] == "spike")
    tops = [r for r in got if r["pattern"] == "top"]
    assert len(tops) == 30 and {r["subject"] for r in tops} == {"seg-top"}, tops[:3]
    assert all(r["rank"] == 1 for r in tops)
    assert bucket_label(123.4, 100.0) == "100"
