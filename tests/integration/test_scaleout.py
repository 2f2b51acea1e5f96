"""Scale-out without a changelog (`[state] changelog.enable = false`):
instances of one consumer group, each with its own state dir, share the
partitions while the input flows; one joins, one leaves.

What is claimed (docs/STATE.md "Moving a partition"): without the
changelog, a partition that moves to an instance resumes from the state
that instance stores for it, or is read again from the beginning if it has
none, so every published result equals the reference, none is missing, and
the results of a moved partition may be published again (identical). With
the changelog (the default) state moves with its partitions:
test_changelog.py.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from reference import Measure, Window, compute
from support import assert_matches_reference, make_config, make_events, read_until_all, wait_for_log

PARTITIONS = 8
CHUNKS = 12
CHUNK = 25_000

MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [
    Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
    Window("hop10s", "hopping", size_ms=10_000, advance_ms=5_000, grace_ms=1_000, measures=("score",)),
]



def results_published(proc) -> int:
    m = re.search(r"stopped: \d+ events, (\d+) results", proc.stderr)
    assert m, f"no 'stopped:' line in the log:\n{proc.stderr[-3000:]}"
    return int(m.group(1))


def test_instances_join_and_leave_while_input_flows(kafka, dmpflow, tmp_path: Path):
    events = make_events(CHUNKS * CHUNK, 31, keys=60, step_ms=10, ooo=0.10, max_delay_ms=8_000,
                         null_clicks=0.30)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"

    def config(name: str) -> Path:
        return dmpflow.write_config(make_config(
            bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
            state_dir=tmp_path / f"state-{name}", group_id=group, measures=MEASURES,
            windows=WINDOWS, commit_interval_ms=200,
        ).replace("[state]\n", "[state]\nchangelog.enable = false\n"), name=f"{name}.conf")

    produced = kafka.produce(src, events[:2 * CHUNK], PARTITIONS)
    producing_error: list[BaseException] = []

    def produce_rest() -> None:  # the input keeps flowing through both rebalances
        try:
            for i in range(2, CHUNKS):
                time.sleep(0.6)
                produced.extend(kafka.produce(src, events[i * CHUNK:(i + 1) * CHUNK], PARTITIONS))
        except BaseException as e:  # noqa: BLE001
            producing_error.append(e)

    reader = kafka.reader(dst)
    a = dmpflow.start("run", "-c", config("a"))
    producer = threading.Thread(target=produce_rest, daemon=True)
    producer.start()
    assert reader.until(1, timeout=30), "instance a published nothing"
    assert wait_for_log(a, r"assigned 8 partition\(s\)"), a.stderr[-3000:]

    # b joins: the group rebalances and a gives some partitions to b.
    b = dmpflow.start("run", "-c", config("b"))
    assert wait_for_log(b, r"assigned [1-7] partition\(s\)", timeout=60), b.stderr[-3000:]
    assert wait_for_log(a, r"revoked 8 partition\(s\)"), a.stderr[-3000:]
    assert wait_for_log(a, r"assigned [1-7] partition\(s\)"), a.stderr[-3000:]
    seen = len(reader.records)
    assert reader.until(seen + 1, timeout=30), "nothing published after b joined"

    # a leaves while input still flows: b takes every partition.
    assert producer.is_alive(), "the input ended before a left: produce more chunks"
    assert dmpflow.stop(a, timeout=20) == 0
    assert wait_for_log(b, r"assigned 8 partition\(s\)", timeout=60), b.stderr[-3000:]
    producer.join(120)
    assert not producer.is_alive() and not producing_error, producing_error

    ref = compute(produced, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])
    want = set(ref.results)
    assert len(want) > 5000

    read_until_all(reader, want, b, timeout=120)
    assert b.poll() is None, f"instance b exited with code {b.poll()}"
    assert dmpflow.stop(b, timeout=20) == 0
    reader.drain(2.0)
    assert not reader.errors, reader.errors[:5]
    assert results_published(a) > 0 and results_published(b) > 0
    for proc in (a, b):  # every partition's queue stayed forwarded (src/fetchq.h)
        assert "came through the consumer queue" not in proc.stderr, proc.stderr[-3000:]
    assert_matches_reference(reader.records, ref, allow_duplicates=True)
    print(f"{len(reader.records)} records for {len(want)} results "
          f"(a {results_published(a)}, b {results_published(b)})")
