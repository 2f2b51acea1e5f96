"""Crash consistency: kill -9 dmpflow at random moments while it processes
>= 1 M generated events, restart it each time, and check that the published
final results equal the independent reference (reference.py) computed from
the input topic: nothing lost, nothing double-counted, no window missing.

Under [state] guarantee = at_least_once a window's result may be published
more than once only when a crash fell between publishing it and committing
the state that records it; such duplicates are counted, printed, and must
be identical copies. Under exactly_once a read_committed consumer (the
tests' reader) must see every result exactly once: no duplicate at all.

Environment: CRASH_EVENTS (default 1 000 000), CRASH_KILLS (default 20),
CRASH_SEED (default: random, printed), CRASH_KEYS (default 200) and
CRASH_BUDGET ([state] memory.budget, default 0: derived)."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from reference import Measure, Window, compute
from support import assert_matches_reference, committed_offsets, decode_event, end_offsets, \
    make_config

PARTITIONS = 4
EVENTS = int(os.environ.get("CRASH_EVENTS", "1000000"))
KILLS = int(os.environ.get("CRASH_KILLS", "20"))
KEYS = int(os.environ.get("CRASH_KEYS", "200"))
BUDGET = os.environ.get("CRASH_BUDGET", "0")  # e.g. 3m: crashes while evicting
MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [
    Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
    Window("hop20s", "hopping", size_ms=20_000, advance_ms=10_000, grace_ms=1_000,
           measures=("score",)),
]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_kill9_restarts_lose_and_double_count_nothing(kafka, dmpflow, tmp_path, guarantee):
    seed = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"crash test ({guarantee}): seed {seed}, {EVENTS} events, {KILLS} kills")
    rng = random.Random(seed)
    in_topic = kafka.topic(PARTITIONS, "in")
    out_topic = kafka.topic(PARTITIONS, "out")
    group = f"{in_topic}-g"
    conf = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=in_topic, output_topic=out_topic,
        state_dir=tmp_path / "state", group_id=group, measures=MEASURES, windows=WINDOWS,
        commit_interval_ms=100,
    ).replace("[state]\n", f"[state]\nmemory.budget = {BUDGET}\nguarantee = {guarantee}\n")
        + "\n[kafka]\n"
        # Static membership: a restarted instance takes its predecessor's
        # place at once instead of waiting for its session to time out.
        "group.instance.id = crash-test\n"
        "session.timeout.ms = 6000\n")

    # Events arrive while dmpflow runs and crashes: the generator is paced
    # so that the kills fall during processing, not after it.
    rate = max(EVENTS // 25, 1000)
    gen = dmpflow.start("gen", "-b", kafka.bootstrap, "-t", in_topic, "-n", str(EVENTS),
                        "--keys", str(KEYS), "--groups", "5", "--seed", str(seed),
                        "--ooo", "0.05", "--max-delay-ms", "3000", "--rate", str(rate))
    kills = 0
    while kills < KILLS:
        proc = dmpflow.start("run", "-c", conf)
        time.sleep(rng.uniform(0.3, 2.5))
        assert proc.poll() is None, f"dmpflow exited early ({proc.poll()}):\n{proc.stderr[-3000:]}"
        proc.signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    assert gen.wait(120) == 0, f"gen failed:\n{gen.stderr[-2000:]}"

    # The last run processes everything, then stops cleanly.
    ends = end_offsets(kafka.bootstrap, in_topic, PARTITIONS)
    assert sum(ends.values()) == EVENTS, ends
    proc = dmpflow.start("run", "-c", conf)
    deadline = time.monotonic() + 240
    while "assigned" not in proc.stderr or committed_offsets(kafka.bootstrap, group, in_topic, PARTITIONS) != ends:
        assert proc.poll() is None, f"dmpflow exited ({proc.poll()}):\n{proc.stderr[-3000:]}"
        assert time.monotonic() < deadline, (
            f"not caught up: committed {committed_offsets(kafka.bootstrap, group, in_topic, PARTITIONS)} "
            f"of {ends}")
        time.sleep(0.5)
    assert dmpflow.stop(proc, timeout=30) == 0, proc.stderr[-3000:]

    # The reference, from the input as stored in Kafka (per-partition order).
    inp = kafka.reader(in_topic, decode=decode_event)
    assert inp.until(EVENTS, timeout=180), f"read {len(inp.records)} of {EVENTS} input events"
    events = [(p, key.decode(), ev) for p, off, key, ev in sorted(inp.records, key=lambda r: r[:2])]
    ref = compute(events, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])
    assert len(ref.results) > 1000, f"only {len(ref.results)} expected results"

    out = kafka.reader(out_topic)
    out.until(len(ref.results), timeout=120)
    out.drain(3.0)
    assert not out.errors, out.errors[:5]

    # Duplicates (crash between publish and commit) are counted, then
    # every copy is checked against the reference like a unique record.
    seen: dict[tuple, int] = {}
    for _, _, _, rec in out.records:
        k = (rec["window"], rec["key"], rec["start"], rec["measure"])
        seen[k] = seen.get(k, 0) + 1
    dup_ids = sum(1 for n in seen.values() if n > 1)
    dup_records = sum(n - 1 for n in seen.values() if n > 1)
    print(f"crash test ({guarantee}): {kills} kills; {len(out.records)} results published "
          f"for {len(ref.results)} expected; {dup_ids} results published more than once "
          f"({dup_records} extra copies)")
    if guarantee == "exactly_once":  # (the reader is read_committed)
        assert dup_records == 0, f"{dup_ids} results seen more than once under exactly_once"
    firsts: dict[tuple, tuple] = {}
    for r in out.records:
        rec = r[3]
        k = (rec["window"], rec["key"], rec["start"], rec["measure"])
        if k in firsts:
            assert rec == firsts[k][3], f"copies of {k} differ: {rec} vs {firsts[k][3]}"
        else:
            firsts[k] = r
    # 0 lost, 0 double-counted (counts and sums equal), no window missing
    assert_matches_reference(list(firsts.values()), ref)
