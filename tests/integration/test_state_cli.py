"""`dmpflow state list|dump|verify` on the store a real run left behind,
checked against the input (offsets, stream times) and against aggregates
computed here from the events (the windows still open at the end)."""

from __future__ import annotations

import re
import time
from collections import Counter

from reference import Measure, Window, compute
from support import make_config, make_events, per_partition

PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOW = Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score",))


def _run_to_end(kafka, dmpflow, conf, group, topic, counts):
    from support import committed_offsets  # the group's, committed after each state commit

    proc = dmpflow.start("run", "-c", conf)
    deadline = time.monotonic() + 60
    want = {p: counts.get(p, 0) for p in range(PARTITIONS)}
    while "assigned" not in proc.stderr or {
            p: max(o, 0) for p, o in committed_offsets(kafka.bootstrap, group, topic, PARTITIONS).items()} != want:
        assert proc.poll() is None, proc.stderr[-3000:]
        assert time.monotonic() < deadline, "dmpflow did not catch up"
        time.sleep(0.3)
    assert dmpflow.stop(proc) == 0, proc.stderr[-3000:]


def test_state_list_dump_verify(kafka, dmpflow, tmp_path):
    topic = kafka.topic(PARTITIONS, "in")
    out = kafka.topic(PARTITIONS, "out")
    group = f"{topic}-g"
    state = tmp_path / "state"
    conf = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=topic, output_topic=out, state_dir=state,
        group_id=group, measures=MEASURES, windows=[WINDOW], commit_interval_ms=100))
    produced = kafka.produce(topic, make_events(3000, seed=11, keys=20), PARTITIONS)
    counts = Counter(p for p, _, _ in produced)
    _run_to_end(kafka, dmpflow, conf, group, topic, counts)
    ref = compute(produced, [WINDOW], [Measure.parse(n, e) for n, e in MEASURES.items()])

    # list: every partition with its stored offset and stream time
    proc = dmpflow.run("state", "list", "-c", conf)
    assert proc.popen.returncode == 0, proc.stderr
    lines = re.findall(r"partition (\d+): next offset (-?\d+), stream time (\d+), (\d+) entries",
                       proc.stdout)
    assert len(lines) == len(counts), proc.stdout
    for p, off, st, n in lines:
        assert int(off) == counts[int(p)], (p, off, counts)
        assert int(st) == ref.stream_time[int(p)], (p, st, ref.stream_time)
        assert int(n) > 0

    # verify: every value decodes and satisfies the invariants
    proc = dmpflow.run("state", "verify", "-c", conf)
    assert proc.popen.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b0 problems", proc.stdout), proc.stdout

    # dump: the open windows of the busiest key, against the events
    key = Counter(ev["user_id"] for _, _, ev in produced).most_common(1)[0][0]
    part = next(p for p, k, _ in produced if k == key)
    st = ref.stream_time[part]
    expect: dict[int, list[float]] = {}
    run_st = None
    for ev in per_partition(produced)[part]:
        run_st = ev["ts"] if run_st is None else max(run_st, ev["ts"])
        s = ev["ts"] // WINDOW.size_ms * WINDOW.size_ms
        if ev["user_id"] == key and s + WINDOW.size_ms + WINDOW.grace_ms > run_st:
            expect.setdefault(s, []).append(0.7 * ev["price"] + 0.3 * ev["quantity"])
    expect = {s: v for s, v in expect.items() if s + WINDOW.size_ms + WINDOW.grace_ms > st}
    assert expect, "the busiest key has no open window: pick other parameters"
    proc = dmpflow.run("state", "dump", "-c", conf, "-p", str(part), "-k", key)
    assert proc.popen.returncode == 0, proc.stderr
    got = {int(s): (int(c), float(sm)) for s, c, sm in re.findall(
        r"window tumble10s \[(-?\d+), -?\d+\) score\{count=(\d+) sum=(\S+) ", proc.stdout)}
    assert set(got) == set(expect), (got, expect, proc.stdout)
    for s, vals in expect.items():
        assert got[s][0] == len(vals)
        assert abs(got[s][1] - sum(vals)) <= 1e-9 * max(1.0, abs(sum(vals))), (s, got[s], sum(vals))

    # a key without state, a missing store, a store of another pipeline
    proc = dmpflow.run("state", "dump", "-c", conf, "-p", str(part), "-k", "nobody")
    assert proc.popen.returncode == 1 and "no state for key" in proc.stderr, proc.stderr
    proc = dmpflow.run("state", "list", "-c", conf, "-o", f"state.dir={tmp_path / 'none'}")
    assert proc.popen.returncode == 1 and "no dmpflow state store" in proc.stderr, proc.stderr
    other = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=topic, output_topic=out, state_dir=state,
        group_id=group, measures={"score": "2*price"}, windows=[WINDOW]), name="other.conf")
    proc = dmpflow.run("state", "verify", "-c", other)
    assert proc.popen.returncode == 1 and "different pipeline" in proc.stderr, proc.stderr
