"""State that moves with its partitions (docs/STATE.md "Changelog and
transactions"): every commit writes the state's changes to a compacted
changelog topic, in the transaction that commits the input offsets; the
instance that is given a partition restores it from the changelog, never by
reading its input again.

- Moves: two instances of one group, partitions moving in both directions
  while the input flows (one joins, one is killed with -9 and comes back, one
  leaves). Every result equals the independent reference; under
  exactly_once a read_committed reader sees each exactly once. An instance
  that takes over a partition resumes at the offset its predecessor
  committed (never at the start of the input), and the input is processed
  about once in all, not once per move.
- Retention: the input that an instance has processed is deleted by the
  topic's retention (retention.ms = 1 s), then the partitions move to an
  instance without any local state: it restores them from the changelog, and
  the windows that span the deleted and the new input come out right.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from reference import Measure, Window, compute
from support import assert_matches_reference, make_config, make_events, read_until_all, \
    wait_for_log, window_closers

PARTITIONS = 8
MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [
    Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
    Window("hop10s", "hopping", size_ms=10_000, advance_ms=5_000, grace_ms=1_000,
           measures=("score",)),
]


# one long window over everything: its result needs every event
LONG = [Window("long", "tumbling", size_ms=10_000_000, grace_ms=0, measures=("score",))]


def close_long_window(kafka, dmpflow, proc, reader, src, inputs, producer_conf=None):
    """Sends an event far in the future on every partition (closing LONG's
    window), reads until every result of the reference over inputs and
    those closers is published, stops proc. Returns (closers, reference)."""
    closed = kafka.produce(src, window_closers(inputs[-1][2], PARTITIONS, 20_000_000),
                           PARTITIONS, producer_conf=producer_conf)
    ref = compute(inputs + closed, LONG, [Measure.parse(n, e) for n, e in MEASURES.items()])
    read_until_all(reader, set(ref.results), proc, timeout=120)
    assert dmpflow.stop(proc, timeout=30) == 0, proc.stderr[-3000:]
    reader.drain(2.0)
    return closed, ref


def events_processed(stderr: str) -> int:
    """Events an instance processed, from its progress and stop lines (the
    last one of each run)."""
    runs = re.split(r"dmpflow \S+: consuming", stderr)
    total = 0
    for run in runs[1:]:
        counts = re.findall(r"(?:progress|stopped): (\d+) events", run)
        total += int(counts[-1]) if counts else 0
    return total


def resumed_offsets(stderr: str) -> list[int]:
    """The offsets partitions resumed at, after their restores."""
    return [int(x) for x in re.findall(r"resuming at offset (-?\d+)", stderr)]


def config(dmpflow, kafka, tmp_path, name, src, dst, group, guarantee, windows=WINDOWS):
    text = make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
        state_dir=tmp_path / f"state-{name}", group_id=group, measures=MEASURES,
        windows=windows, commit_interval_ms=200,
        # a killed instance's partitions move after its session times out
        kafka_extra=["session.timeout.ms = 6000", "heartbeat.interval.ms = 500"],
    ).replace("[state]\n", f"[state]\nguarantee = {guarantee}\n")
    return dmpflow.write_config(text, name=f"{name}.conf")


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_partitions_move_with_their_state(kafka, dmpflow, tmp_path: Path, guarantee):
    chunks, chunk = 14, 20_000
    events = make_events(chunks * chunk, 41, keys=80, step_ms=10, ooo=0.10, max_delay_ms=8_000,
                         null_clicks=0.30)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"
    conf_a = config(dmpflow, kafka, tmp_path, "a", src, dst, group, guarantee)
    conf_b = config(dmpflow, kafka, tmp_path, "b", src, dst, group, guarantee)

    produced = kafka.produce(src, events[:2 * chunk], PARTITIONS)
    producing_error: list[BaseException] = []

    def produce_rest() -> None:  # the input flows through every move
        try:
            for i in range(2, chunks):
                time.sleep(1.0)
                produced.extend(kafka.produce(src, events[i * chunk:(i + 1) * chunk], PARTITIONS))
        except BaseException as e:  # noqa: BLE001
            producing_error.append(e)

    reader = kafka.reader(dst)  # read_committed
    a = dmpflow.start("run", "-c", conf_a)
    assert wait_for_log(a, r"assigned 8 partition\(s\)"), a.stderr[-3000:]
    producer = threading.Thread(target=produce_rest, daemon=True)
    producer.start()
    assert reader.until(1, timeout=30), "instance a published nothing"

    # b joins: some partitions move a -> b, restored from the changelog
    b = dmpflow.start("run", "-c", conf_b)
    assert wait_for_log(b, r"assigned [1-7] partition\(s\)"), b.stderr[-3000:]
    assert wait_for_log(b, r"restored \d+ changelog records"), b.stderr[-3000:]
    time.sleep(2.0)

    # a is killed: its partitions move to b after a's session times out
    a_first = a.stderr
    at_kill = len(produced)  # a's killed run processed at most this much
    a.signal(signal.SIGKILL)
    a.wait(10)
    assert wait_for_log(b, r"assigned 8 partition\(s\)", timeout=60), b.stderr[-3000:]
    time.sleep(1.0)

    # a comes back (its own store, its local checkpoints): partitions move b -> a
    a = dmpflow.start("run", "-c", conf_a)
    assert wait_for_log(a, r"assigned [1-7] partition\(s\)", timeout=60), a.stderr[-3000:]
    time.sleep(1.0)

    # b leaves: every partition moves to a, some that a never held
    assert producer.is_alive(), "the input ended before the last move: produce more chunks"
    assert dmpflow.stop(b, timeout=30) == 0, b.stderr[-3000:]
    assert wait_for_log(a, r"assigned 8 partition\(s\)", timeout=60), a.stderr[-3000:]
    producer.join(120)
    assert not producer.is_alive() and not producing_error, producing_error

    ref = compute(produced, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])
    want = set(ref.results)
    assert len(want) > 5000

    read_until_all(reader, want, a, timeout=180)
    assert a.poll() is None, f"instance a exited with code {a.poll()}:\n{a.stderr[-3000:]}"
    assert dmpflow.stop(a, timeout=30) == 0, a.stderr[-3000:]
    reader.drain(3.0)
    assert not reader.errors, reader.errors[:5]

    # No partition went back to the start of its input: every partition an
    # instance took over after the first assignment resumed where the
    # state it restored said, and all the input was processed about once.
    logs = a_first + b.stderr + a.stderr
    later = resumed_offsets(b.stderr) + resumed_offsets(a.stderr)
    assert later and all(o > 0 for o in later), later
    processed = at_kill + events_processed(b.stderr) + events_processed(a.stderr)
    restores = len(re.findall(r"restored \d+ changelog records", logs))
    print(f"{guarantee}: {len(produced)} events, at most {processed} processed in all, "
          f"{len(reader.records)} records for {len(want)} results; restores: {restores}")
    assert processed < 1.5 * len(produced), (processed, len(produced))

    if guarantee == "exactly_once":
        assert_matches_reference(reader.records, ref)  # no duplicate
    else:
        assert_matches_reference(reader.records, ref, allow_duplicates=True)


def test_state_outlives_its_deleted_input(kafka, dmpflow, tmp_path: Path):
    """An instance processes the first half of the input and stops; the
    input topic's retention then deletes its old segments (retention.ms =
    1 s, small segments; scripts/kafka-local checks retention every second);
    the second half comes; another instance without local state takes every
    partition and restores them from the changelog. The windows that span
    both halves must equal the reference over all the input: re-reading what
    is left of the input would miss the deleted events."""
    n = 80_000
    events = make_events(n, 43, keys=50, step_ms=5, ooo=0.0, max_delay_ms=0, null_clicks=0.2)
    segments = {"segment.bytes": str(64 * 1024)}
    src = kafka.topic(PARTITIONS, "in", config=segments)
    dst = kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"

    def conf(name: str) -> Path:
        return config(dmpflow, kafka, tmp_path, name, src, dst, group, "at_least_once",
                      windows=LONG)

    small = {"batch.size": 16384}  # batches must fit in a segment
    first = kafka.produce(src, events[:n // 2], PARTITIONS, producer_conf=small)
    a = dmpflow.start("run", "-c", conf("a"))
    assert wait_for_log(a, r"assigned 8 partition\(s\)"), a.stderr[-3000:]
    deadline = time.monotonic() + 60
    while f"progress: {n // 2} events" not in a.stderr and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # a commit after the last event
    assert dmpflow.stop(a, timeout=30) == 0, a.stderr[-3000:]
    assert f"stopped: {n // 2} events" in a.stderr, a.stderr[-2000:]

    # retention deletes the processed input's closed segments
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap, "log_level": 3})

    def set_retention(ms: str) -> None:
        res = ConfigResource(ConfigResource.Type.TOPIC, src, incremental_configs=[
            ConfigEntry("retention.ms", ms, incremental_operation=AlterConfigOpType.SET)])
        for f in admin.incremental_alter_configs([res]).values():
            f.result(30)

    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"{group}-wm",
                  "log_level": 3})

    def watermarks() -> list[tuple[int, int]]:
        return [c.get_watermark_offsets(TopicPartition(src, p), timeout=10, cached=False)
                for p in range(PARTITIONS)]

    set_retention("1000")
    deadline = time.monotonic() + 60
    marks = watermarks()
    while time.monotonic() < deadline:
        marks = watermarks()
        if sum(lo for lo, _hi in marks) >= sum(hi for _lo, hi in marks) // 2 and \
                all(lo > 0 for lo, _hi in marks):
            break
        time.sleep(1.0)
    set_retention("-1")
    c.close()
    # (the active segment of each partition stays: most, not all, is gone)
    deleted = sum(lo for lo, _hi in marks)
    print(f"retention deleted {deleted} of {n // 2} processed events: {marks}")
    assert all(lo > 0 for lo, _hi in marks) and deleted >= n // 4, marks

    second = kafka.produce(src, events[n // 2:], PARTITIONS, producer_conf=small)
    reader = kafka.reader(dst)
    b = dmpflow.start("run", "-c", conf("b"))  # no local state at all
    assert wait_for_log(b, r"assigned 8 partition\(s\)"), b.stderr[-3000:]
    assert wait_for_log(b, r"restored [1-9]\d* changelog records", count=PARTITIONS), \
        b.stderr[-3000:]
    closed, ref = close_long_window(kafka, dmpflow, b, reader, src, first + second,
                                    producer_conf=small)
    # b read only the second half and the closers: the first half came from
    # the changelog
    assert f"stopped: {len(second) + len(closed)} events" in b.stderr, b.stderr[-2000:]
    assert_matches_reference(reader.records, ref)


def test_restore_waits_for_an_open_transaction(kafka, dmpflow, tmp_path: Path):
    """An owner that dies inside a transaction leaves it open on the
    changelog (until its restart aborts it, or the broker after its
    transaction.timeout.ms); its records hold the partition's last stable
    offset back, and whatever the next owner commits lands behind them,
    invisible to read_committed readers. A restore must not end at such an
    end: here a transaction is left open on every changelog partition (a
    stand-in for the dead owner's), an instance without local state takes
    every partition, and none may open before that transaction ends. Then
    the results must equal the reference, once each (exactly_once)."""
    from confluent_kafka import Producer

    n = 40_000
    events = make_events(n, 47, keys=50, step_ms=5, ooo=0.0, max_delay_ms=0, null_clicks=0.2)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"

    def conf(name: str) -> Path:
        return config(dmpflow, kafka, tmp_path, name, src, dst, group, "exactly_once",
                      windows=LONG)

    first = kafka.produce(src, events[:n // 2], PARTITIONS)
    a = dmpflow.start("run", "-c", conf("a"))
    deadline = time.monotonic() + 60
    while f"progress: {n // 2} events" not in a.stderr and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # a commit after the last event
    assert dmpflow.stop(a, timeout=30) == 0, a.stderr[-3000:]

    zombie = Producer({"bootstrap.servers": kafka.bootstrap, "log_level": 3,
                       "transactional.id": f"{group}-zombie", "transaction.timeout.ms": 60000})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    for p in range(PARTITIONS):
        zombie.produce(f"{group}-changelog", key=b"\xffzombie", value=b"never committed",
                       partition=p)
    assert zombie.flush(30) == 0

    second = kafka.produce(src, events[n // 2:], PARTITIONS)
    reader = kafka.reader(dst)  # read_committed
    b = dmpflow.start("run", "-c", conf("b"))  # no local state
    assert wait_for_log(b, r"a transaction is open", count=PARTITIONS, timeout=60), \
        b.stderr[-3000:]
    time.sleep(3.0)
    assert "changelog records (offsets" not in b.stderr, b.stderr[-3000:]
    assert b.poll() is None, b.stderr[-3000:]
    zombie.abort_transaction(30)
    assert wait_for_log(b, r"restored [1-9]\d* changelog records", count=PARTITIONS,
                        timeout=60), b.stderr[-3000:]

    closed, ref = close_long_window(kafka, dmpflow, b, reader, src, first + second)
    assert f"stopped: {len(second) + len(closed)} events" in b.stderr, b.stderr[-2000:]
    assert_matches_reference(reader.records, ref)  # no duplicate


def test_waits_for_its_input_topic(kafka, dmpflow, tmp_path: Path):
    """With the changelog, the input topic's partition count is needed at
    startup: an instance started before its input topic exists waits for it
    (as for the cluster), consuming nothing, then works as usual."""
    from confluent_kafka.admin import NewTopic

    src = f"{kafka.topic(1, 'probe')}-later-in"  # (unique, not created yet)
    dst = kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"
    proc = dmpflow.start("run", "-c", config(dmpflow, kafka, tmp_path, "a", src, dst, group,
                                             "at_least_once", windows=LONG))
    assert wait_for_log(proc, rf"the input topic {src} does not exist", timeout=30), \
        proc.stderr[-3000:]
    time.sleep(2.0)
    assert proc.poll() is None and "assigned" not in proc.stderr, proc.stderr[-3000:]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap, "log_level": 3})
    admin.create_topics([NewTopic(src, num_partitions=PARTITIONS, replication_factor=1)])[src] \
        .result(30)
    assert wait_for_log(proc, rf"the input topic {src} exists after", timeout=60), \
        proc.stderr[-3000:]
    events = make_events(4_000, 53, keys=20, step_ms=5, ooo=0.0, max_delay_ms=0)
    reader = kafka.reader(dst)
    produced = kafka.produce(src, events, PARTITIONS)
    _closed, ref = close_long_window(kafka, dmpflow, proc, reader, src, produced)
    admin.delete_topics([src])
    assert_matches_reference(reader.records, ref, allow_duplicates=True)


def test_refuses_a_changelog_that_is_not_compacted(kafka, dmpflow, tmp_path: Path):
    """A changelog topic that deletes old segments (cleanup.policy=delete)
    would lose state: startup refuses it with exit 2 and says what to
    change. (On a real broker the policy is asked of the controller; only
    a cluster that names no controller, librdkafka's mock, goes unchecked.)"""
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    group = f"{src}-g"
    changelog = kafka.topic(PARTITIONS, "changelog", {"cleanup.policy": "delete"})
    conf = config(dmpflow, kafka, tmp_path, "a", src, dst, group, "at_least_once")
    conf.write_text(conf.read_text().replace("[state]\n",
                                             f"[state]\nchangelog.topic = {changelog}\n"))
    proc = dmpflow.run("run", "-c", conf, timeout=60)
    assert proc.poll() == 2, proc.stderr[-3000:]
    assert f"the changelog topic {changelog} has cleanup.policy=delete: it must be " \
           "compact" in proc.stderr, proc.stderr[-3000:]
    assert "is not checked" not in proc.stderr, proc.stderr[-3000:]
