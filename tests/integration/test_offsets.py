"""Where consumption starts. A partition without stored state starts at
`[input] auto.offset.reset` as of its assignment (dmpflow resolves the
logical offset before it reports ready); a partition with stored state
resumes at the stored offset whatever auto.offset.reset says."""

from __future__ import annotations

import re
import time
from collections import Counter

from reference import Measure, Window, compute
from support import assert_matches_reference, make_config, make_events
from support import committed_offsets, end_offsets, free_port
from support import http_get as get

PARTITIONS = 2
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=1_000, measures=("score",))]
T0 = 1_700_000_003_000


def wait_ready(port: int, proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr[-3000:]
        if get(port, "/readyz")[0] == 200:
            return
        time.sleep(0.05)
    raise AssertionError("dmpflow not ready")


def test_latest_starts_at_assignment_and_stored_offsets_win(kafka, dmpflow, tmp_path):
    before = make_events(2_000, 61, keys=12, t0=T0, ooo=0.0)
    during = make_events(3_000, 62, keys=12, t0=T0 + 1_000_000, ooo=0.05, max_delay_ms=3_000)
    after = make_events(3_000, 63, keys=12, t0=T0 + 2_000_000, ooo=0.05, max_delay_ms=3_000)
    measures = [Measure.parse(n, x) for n, x in MEASURES.items()]

    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    kafka.produce(src, before, PARTITIONS)  # there before dmpflow: skipped
    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200)
    assert "auto.offset.reset = earliest" in cfg
    cfg = cfg.replace("auto.offset.reset = earliest", "auto.offset.reset = latest")
    cfg += f"\n[http]\nport = {port}\n"
    conf = dmpflow.write_config(cfg)
    reader = kafka.reader(dst)

    proc = dmpflow.start("run", "-c", conf)
    wait_ready(port, proc)
    # produced right after readiness: none of it may be skipped
    produced = kafka.produce(src, during, PARTITIONS)
    ref = compute(produced, WINDOWS, measures)
    assert len(ref.results) > 20
    assert reader.until(len(ref.results), timeout=60)
    reader.drain(1.0)
    assert_matches_reference(reader.records, ref)
    assert dmpflow.stop(proc) == 0

    # produced while it is down; the restart resumes at the stored offsets,
    # not at the (latest) end, so these are all counted, once
    produced += kafka.produce(src, after, PARTITIONS)
    produced.sort(key=lambda r: r[0])  # stable: per-partition order is kept
    ref = compute(produced, WINDOWS, measures)
    proc = dmpflow.start("run", "-c", conf)
    assert reader.until(len(ref.results), timeout=60)
    reader.drain(1.0)
    assert_matches_reference(reader.records, ref)
    assert dmpflow.stop(proc) == 0


def _recreate(kafka, topic: str, partitions: int) -> None:
    """Deletes topic and creates it again, empty (as a new user may)."""
    from confluent_kafka.admin import NewTopic
    kafka.admin.delete_topics([topic], operation_timeout=30)[topic].result(60)
    deadline = time.monotonic() + 60
    while True:  # deletion completes in the background
        try:
            kafka.admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
            break
        except Exception:  # noqa: BLE001 (marked for deletion / exists yet)
            assert time.monotonic() < deadline, f"{topic} not re-created"
            time.sleep(0.5)
    while True:
        t = kafka.admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if t and t.error is None and all(p.leader >= 0 for p in t.partitions.values()) \
                and len(t.partitions) == partitions:
            return
        assert time.monotonic() < deadline, f"{topic} has no leaders"
        time.sleep(0.2)


def _metric(port: int, name: str) -> float:
    status, text = get(port, "/metrics")
    assert status == 200
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def _stop_when_committed(dmpflow, proc, kafka, group: str, topic: str, partitions: int) -> None:
    ends = end_offsets(kafka.bootstrap, topic, partitions)
    deadline = time.monotonic() + 60
    while committed_offsets(kafka.bootstrap, group, topic, partitions) != ends:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr[-3000:]
        time.sleep(0.2)
    assert dmpflow.stop(proc) == 0, proc.stderr[-3000:]


def test_recreated_topic_stops_or_resets(kafka, dmpflow, tmp_path):
    """Issue 22: state built from a topic that was deleted and re-created
    held next offsets beyond the new log's end; librdkafka reset to the
    beginning and dmpflow skipped every new record as already applied ("0
    events", no error). Now: exit 2 naming the partition, both offsets and
    the choices; with [state] on.offset.mismatch = reset the partitions
    start over and the new events are all counted, once."""
    measures = [Measure.parse(n, x) for n, x in MEASURES.items()]
    old = make_events(2_000, 71, keys=12, t0=T0, ooo=0.0)
    new = make_events(600, 72, keys=12, t0=T0 + 5_000_000, ooo=0.05, max_delay_ms=2_000)
    src, dst = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"
    stored = Counter(p for p, _k, _e in kafka.produce(src, old, PARTITIONS))
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=group, measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200)
    port = free_port()
    conf = dmpflow.write_config(cfg + f"\n[http]\nport = {port}\n")
    _stop_when_committed(dmpflow, dmpflow.start("run", "-c", conf), kafka, group, src,
                         PARTITIONS)

    _recreate(kafka, src, PARTITIONS)
    produced = kafka.produce(src, new, PARTITIONS)
    ends = Counter(p for p, _k, _e in produced)
    assert all(ends[p] < stored[p] for p in range(PARTITIONS)), (ends, stored)

    proc = dmpflow.run("run", "-c", conf, timeout=60)
    assert proc.popen.returncode == 2, proc.stderr[-3000:]
    m = re.search(r"dmpflow: partition (\d+) of (\S+): the state's next offset (\d+) is beyond "
                  r"the log end offset (\d+): .* Choices: set \[state\] on.offset.mismatch = "
                  r"reset .*, or point \[state\] dir at an empty directory", proc.stderr)
    assert m, proc.stderr[-3000:]
    p = int(m.group(1))
    assert (m.group(2), int(m.group(3)), int(m.group(4))) == (src, stored[p], ends[p])

    reader = kafka.reader(dst)
    ref = compute(produced, WINDOWS, measures)
    proc = dmpflow.start("run", "-c", conf, "-o", "state.on.offset.mismatch=reset")
    deadline = time.monotonic() + 60
    while len([r for r in reader.records if r[3]["start"] >= T0 + 4_000_000]) < len(ref.results):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr[-3000:]
        reader.drain(0.3)
    reader.drain(1.0)
    deadline = time.monotonic() + 10  # (/metrics is published once a second)
    while time.monotonic() < deadline:
        status, text = get(port, "/metrics")
        if status == 200 and f"dmpflow_offset_mismatches_total {PARTITIONS}" in text:
            break
        time.sleep(0.2)
    assert _metric(port, "dmpflow_offset_mismatches_total") == PARTITIONS
    assert _metric(port, "dmpflow_input_records_lost_total") == 0
    assert dmpflow.stop(proc) == 0
    for q in range(PARTITIONS):
        assert (f"partition {q} of {src}: the state's next offset {stored[q]} is beyond the log "
                f"end offset {ends[q]}: discarding the partition's state") in proc.stderr
    assert_matches_reference([r for r in reader.records if r[3]["start"] >= T0 + 4_000_000], ref)


def test_deleted_input_counted_as_lost(kafka, dmpflow, tmp_path):
    """A stored offset below the log start (retention deleted input before
    it was read; here DeleteRecords): a warning with the count, the metric,
    and the input resumes at the log start."""
    from confluent_kafka import TopicPartition
    measures = [Measure.parse(n, x) for n, x in MEASURES.items()]
    events = make_events(2_000, 73, keys=12, t0=T0, ooo=0.0)
    src, dst = kafka.topic(1, "in"), kafka.topic(1, "out")
    group = f"{src}-g"
    first = kafka.produce(src, events[:500], 1)
    port = free_port()
    conf = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=group, measures=MEASURES, windows=WINDOWS, commit_interval_ms=200)
        + f"\n[http]\nport = {port}\n")
    _stop_when_committed(dmpflow, dmpflow.start("run", "-c", conf), kafka, group, src, 1)
    rest = kafka.produce(src, events[500:], 1)
    fut = kafka.admin.delete_records([TopicPartition(src, 0, 1_200)])
    for f in fut.values():
        f.result(30)

    ref = compute(first + rest[700:], WINDOWS, measures)  # offsets 0-499 and 1200-1999
    reader = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", conf)
    assert reader.until(len(ref.results), timeout=60), proc.stderr[-3000:]
    reader.drain(1.0)
    assert _metric(port, "dmpflow_input_records_lost_total") == 700
    assert _metric(port, "dmpflow_offset_mismatches_total") == 0
    assert dmpflow.stop(proc) == 0
    assert (f"partition 0 of {src}: the state's next offset 500 is below the log start offset "
            f"1200: 700 records were deleted (retention) before they were read; resuming at "
            f"1200") in proc.stderr
    assert_matches_reference(reader.records, ref)
