"""Issue 4: the complete event-time engine against a real broker, checked
against the independent reference (reference.py): session and sliding
windows beside tumbling ones, late events (counted, carried in results,
copied to the late topic with provenance), idle partitions, update mode and
restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reference import Measure, Window, compute
from support import assert_matches_reference, encode_event, make_config, make_events

PARTITIONS = 4
MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [
    Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
    Window("session3s", "session", gap_ms=3_000, grace_ms=1_000, measures=("score", "clicks")),
    Window("slide5s", "sliding", size_ms=5_000, grace_ms=1_000, measures=("score",)),
]
# Few keys and sparse events: sessions both merge and split; 10 % of events
# arrive up to 8 s late, beyond every grace.
EVENTS = dict(keys=20, step_ms=60, ooo=0.10, max_delay_ms=8_000, null_clicks=0.30)


def measures():
    return [Measure.parse(n, e) for n, e in MEASURES.items()]


def config(kafka, dmpflow, tmp_path: Path, src: str, dst: str, **kw) -> Path:
    return dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
        state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
        windows=kw.pop("windows", WINDOWS), **kw))


def check_coverage(ref) -> None:
    kinds = {r["kind"] for r in ref.results.values()}
    assert kinds == {"tumbling", "session", "sliding"}, kinds
    for w in ("tumble10s", "session3s", "slide5s"):
        assert ref.late_by_window[w] > 0, ref.late_by_window
    assert any(r["late"] > 0 for r in ref.results.values())
    sessions = [r for r in ref.results.values() if r["kind"] == "session"]
    assert any(r["count"] > 1 for r in sessions) and any(r["count"] == 1 for r in sessions)


@pytest.mark.parametrize("seed", [5, 77])
def test_session_sliding_and_late_topic_match_reference(kafka, dmpflow, tmp_path, seed):
    events = make_events(6_000, seed, **EVENTS)
    src, dst, late = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out"), kafka.topic(PARTITIONS, "late")
    produced = kafka.produce(src, events, PARTITIONS)
    ref = compute(produced, WINDOWS, measures())
    check_coverage(ref)

    out, late_reader = kafka.reader(dst), kafka.reader(late, decode=lambda v: v)
    proc = dmpflow.start("run", "-c", config(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=200,
                                             late_topic=late))
    out.until(len(ref.results), timeout=60)
    late_reader.until(len(ref.late_positions), timeout=20)
    rc = dmpflow.stop(proc, timeout=10)
    out.drain(2.0)
    late_reader.drain(1.0)
    assert rc == 0
    assert not out.errors and not late_reader.errors
    assert_matches_reference(out.records, ref)

    # The late topic has exactly the late events, unchanged, with provenance.
    by_pos = {}
    value_of = {}
    pos = {}
    for part, _key, ev in produced:
        value_of[(part, pos.get(part, 0))] = encode_event(ev)
        pos[part] = pos.get(part, 0) + 1
    for (part, off, key, value), hdr in zip(late_reader.records, late_reader.headers):
        src_pos = (int(hdr["dmpflow.source.partition"]), int(hdr["dmpflow.source.offset"]))
        assert hdr["dmpflow.source.topic"].decode() == src
        assert value == value_of[src_pos], f"late copy of {src_pos} differs from the event"
        by_pos[src_pos] = hdr["dmpflow.late.windows"].decode().split(",")
    assert by_pos == ref.late_positions
    assert len(late_reader.records) == len(ref.late_positions)  # no duplicates


def test_idle_partitions_close_every_window(kafka, dmpflow, tmp_path):
    events = make_events(3_000, 9, **EVENTS)
    src, dst = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out")
    produced = kafka.produce(src, events, PARTITIONS)
    ref = compute(produced, WINDOWS, measures(), idle_end=True)
    plain = compute(produced, WINDOWS, measures())
    assert len(ref.results) > len(plain.results)  # idleness closes windows event time alone cannot

    out = kafka.reader(dst)
    # The last windows close ~ (8 s of event time) after the data stops: the
    # stream time advances at wall-clock speed from 1 s after the last record.
    proc = dmpflow.start("run", "-c", config(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=200,
                                             idle_timeout_ms=1000))
    out.until(len(ref.results), timeout=60)
    rc = dmpflow.stop(proc, timeout=10)
    out.drain(1.0)
    assert rc == 0
    assert_matches_reference(out.records, ref)


def test_update_mode_last_update_is_the_final_value(kafka, dmpflow, tmp_path):
    """Every window kind in update mode: intermediate results (final=false)
    at commits, then one final=true result per window equal to the
    reference's final value. (Sessions merged into others only ever have
    final=false results.)"""
    wins = WINDOWS
    events = make_events(8_000, 3, **EVENTS)
    src, dst = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out")
    produced = kafka.produce(src, events, PARTITIONS)
    ref = compute(produced, wins, measures())

    out = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", config(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=50,
                                             windows=wins, emit="update"))
    # every closed window ends with a final=true update; wait for all of them
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out.until(len(out.records) + 1, timeout=1)
        if sum(1 for *_, r in out.records if r["final"]) >= len(ref.results):
            break
    rc = dmpflow.stop(proc, timeout=10)
    out.drain(1.0)
    assert rc == 0
    last = {}
    for part, off, key, r in out.records:  # keyed by key: one partition per id, in order
        last[(r["window"], r["key"], r["start"], r["measure"])] = r
    finals = {k: r for k, r in last.items() if r["final"]}
    assert set(finals) == set(ref.results)
    for kind in ("tumbling", "session", "sliding"):  # intermediate updates of every kind
        assert any(not r["final"] and r["kind"] == kind for *_, r in out.records), kind
    for k, exp in ref.results.items():
        got = finals[k]
        assert got["count"] == exp["count"], k
        for f in ("sum", "min", "max", "mean", "stddev"):
            assert got[f] == pytest.approx(exp[f], rel=1e-9, abs=1e-9), (k, f)


def test_sigterm_restart_keeps_sessions_and_sliding_exactly_once(kafka, dmpflow, tmp_path):
    """Half the events, SIGTERM once results flow, the other half, restart:
    every window (open sessions and sliding buffers included) survives the
    restart, and no result is published twice."""
    events = make_events(40_000, 13, keys=100, step_ms=10, ooo=0.05, max_delay_ms=8_000, null_clicks=0.3)
    src, dst = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out")
    first_half = kafka.produce(src, events[:20_000], PARTITIONS)
    out = kafka.reader(dst)
    cfg = config(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=100)

    first = dmpflow.start("run", "-c", cfg)
    partial = compute(first_half, WINDOWS, measures())
    out.until(len(partial.results), timeout=60)
    assert dmpflow.stop(first, timeout=10) == 0
    out.drain(1.0)
    n_first = len(out.records)

    second_half = kafka.produce(src, events[20_000:], PARTITIONS)
    ref = compute(first_half + second_half, WINDOWS, measures())
    assert 0 < n_first < len(ref.results)
    second = dmpflow.start("run", "-c", cfg)
    out.until(len(ref.results), timeout=90)
    assert dmpflow.stop(second, timeout=10) == 0
    out.drain(2.0)
    assert_matches_reference(out.records, ref)
