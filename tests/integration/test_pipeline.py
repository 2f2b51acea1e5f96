"""End-to-end tests of `dmpflow run` against a real broker, checked against
the independent reference implementation (reference.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from reference import Measure, Window, compute
from support import (EVENT_SCHEMA_PATH, MURMUR2_VECTORS, assert_matches_reference, make_config, make_events,
                     murmur2, murmur2_partition)

PARTITIONS = 4

MEASURES = {
    "score": "0.7*price + 0.3*quantity",
    "clicks": "1*clicks",
}
WINDOWS = [
    Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
    Window("hop10s", "hopping", size_ms=10_000, advance_ms=5_000, grace_ms=1_000, measures=("score", "clicks")),
]


def reference_for(produced):
    return compute(produced, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])


def config_for(kafka, dmpflow, tmp_path: Path, input_topic: str, output_topic: str, **kw) -> Path:
    text = make_config(
        bootstrap=kafka.bootstrap,
        input_topic=input_topic,
        output_topic=output_topic,
        state_dir=tmp_path / "state",
        group_id=f"{input_topic}-g",
        measures=MEASURES,
        windows=WINDOWS,
        **kw,
    )
    return dmpflow.write_config(text)


def check_coverage(ref) -> None:
    """The data must exercise what the test claims to test."""
    assert ref.late_pairs["tumble10s"] > 0 and ref.late_pairs["hop10s"] > 0, ref.late_pairs
    assert ref.late_events > 0
    assert ref.undefined["clicks"] > 0
    assert len(ref.results) > 1000
    counts = [r["count"] for r in ref.results.values()]
    assert min(counts) == 1  # single-value windows (stddev 0) are covered


@pytest.mark.parametrize("seed", [11, 2024])
def test_out_of_order_streams_match_reference(kafka, dmpflow, tmp_path, seed):
    events = make_events(20_000, seed, keys=50, step_ms=10, ooo=0.10, max_delay_ms=8_000, null_clicks=0.30)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    produced = kafka.produce(src, events, PARTITIONS)
    ref = reference_for(produced)
    check_coverage(ref)

    reader = kafka.reader(dst)
    cfg = config_for(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=200)
    proc = dmpflow.start("run", "-c", cfg)

    reached = reader.until(len(ref.results), timeout=60)
    assert proc.poll() is None, f"dmpflow exited early with code {proc.poll()}"
    rc = dmpflow.stop(proc, timeout=10)
    reader.drain(2.0)  # catch extras, including any published at shutdown
    assert not reader.errors, reader.errors[:5]
    assert rc == 0, f"exit code {rc} after SIGTERM"
    assert_matches_reference(reader.records, ref)
    assert reached  # implied by the equality above; kept for the message order
    # Results are partitioned by key as the Java client would (murmur2), so
    # the output is co-partitioned with Java-produced topics of that key.
    misplaced = [(p, k) for p, _o, k, _r in reader.records if p != murmur2_partition(k, PARTITIONS)]
    assert not misplaced, f"{len(misplaced)} of {len(reader.records)} results not in murmur2(key)'s partition: {misplaced[:5]}"


def test_murmur2_matches_kafkas_vectors():
    """The reference partitioner above is Kafka's: its own test vectors."""
    for key, want in MURMUR2_VECTORS.items():
        got = murmur2(key)
        assert (got - (1 << 32) if got >= 1 << 31 else got) == want, key


def test_sigterm_and_restart_is_exactly_once(kafka, dmpflow, tmp_path):
    events = make_events(1_000_000, 7, keys=50, step_ms=10, ooo=0.10, max_delay_ms=8_000, null_clicks=0.30)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    # Input batches of 100 records, fetched one batch per partition per
    # fetch (a fetch returns at least one batch whatever its byte limit):
    # dmpflow reads 1 M events at 3 M/s unthrottled, before the first
    # result could stop it.
    produced = kafka.produce(src, events, PARTITIONS, producer_conf={"batch.num.messages": 100})
    ref = reference_for(produced)
    check_coverage(ref)
    expected = len(ref.results)

    reader = kafka.reader(dst)
    cfg = config_for(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=200,
                     kafka_extra=["max.partition.fetch.bytes = 1"])

    # Run 1: stop it as soon as results start to flow (at most ~10 s for the
    # consumer group to form and the first windows to close).
    first = dmpflow.start("run", "-c", cfg)
    t0 = time.monotonic()
    reader.until(1, timeout=10)
    assert first.poll() is None, f"dmpflow exited by itself with code {first.poll()}"
    waited = time.monotonic() - t0
    rc = dmpflow.stop(first, timeout=10)
    assert rc == 0, f"exit code {rc} after SIGTERM (sent {waited:.1f} s after start)"
    reader.drain(3.0)
    n_first = len(reader.records)
    assert n_first < expected, (
        f"run 1 had already published all {expected} results when SIGTERM arrived "
        f"({waited:.1f} s after start): the restart is not exercised; produce more events"
    )

    # Run 2: same config and state dir: resume from the stored offsets.
    second = dmpflow.start("run", "-c", cfg)
    reader.until(expected, timeout=90)
    assert second.poll() is None, f"restarted dmpflow exited by itself with code {second.poll()}"
    rc = dmpflow.stop(second, timeout=10)
    reader.drain(2.0)
    assert not reader.errors, reader.errors[:5]
    assert rc == 0, f"exit code {rc} after the second SIGTERM"
    print(f"run 1 published {n_first} of {expected} results before SIGTERM")
    assert_matches_reference(reader.records, ref)


def test_rejected_results_stop_commits_and_a_restart_loses_nothing(kafka, dmpflow, tmp_path):
    """The broker refuses every result (the output topic's max.message.bytes
    is below a result's size): dmpflow must learn it from the failure
    delivery reports (it asks for those only), stop without committing, and
    once the topic accepts results, a restart from its state must publish
    every result exactly once."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    events = make_events(20_000, 5, keys=50, step_ms=10, ooo=0.10, max_delay_ms=8_000, null_clicks=0.30)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")

    def set_max_bytes(n: int) -> None:
        entry = ConfigEntry("max.message.bytes", str(n), incremental_operation=AlterConfigOpType.SET)
        res = ConfigResource(ConfigResource.Type.TOPIC, dst, incremental_configs=[entry])
        for f in kafka.admin.incremental_alter_configs([res]).values():
            f.result(timeout=30)

    set_max_bytes(32)
    produced = kafka.produce(src, events, PARTITIONS)
    ref = reference_for(produced)
    assert len(ref.results) > 1000
    cfg = config_for(kafka, dmpflow, tmp_path, src, dst, commit_interval_ms=200)

    first = dmpflow.start("run", "-c", cfg)
    rc = first.wait(60)
    if rc is None:
        first.kill()
        pytest.fail("dmpflow kept running while the broker refused every result")
    assert rc != 0
    err = first.stderr
    assert f"result delivery to {dst} failed" in err, err[-2000:]
    assert "not committing" in err, err[-2000:]
    print(next(line for line in err.splitlines() if "not committing" in line))

    set_max_bytes(1_048_588)  # Kafka's default
    reader = kafka.reader(dst)
    second = dmpflow.start("run", "-c", cfg)
    reader.until(len(ref.results), timeout=60)
    assert second.poll() is None, f"restarted dmpflow exited by itself with code {second.poll()}"
    rc = dmpflow.stop(second, timeout=10)
    reader.drain(2.0)
    assert not reader.errors, reader.errors[:5]
    assert rc == 0, f"exit code {rc} after SIGTERM"
    assert_matches_reference(reader.records, ref)


# --------------------------------------------------------------------------
# Bad configuration files
# --------------------------------------------------------------------------

GOOD = f"""\
# a valid configuration (the bad ones below change one line of it)
[kafka]
bootstrap.servers = 127.0.0.1:1

[input]
topic = events
group.id = g
format = avro
schema = {EVENT_SCHEMA_PATH}
key.field = user_id
time.field = ts
auto.offset.reset = earliest

[state]
dir = STATE_DIR
commit.interval.ms = 1000

[measure score]
expr = 0.7*price + 0.3*quantity

[window w]
type = tumbling
size.ms = 10000
grace.ms = 2000
measures = score

[output]
topic = out

[log]
level = info
"""


def _replace_line(text: str, old: str, new: str) -> tuple[str, int]:
    lines = text.split("\n")
    idx = lines.index(old)
    lines[idx] = new
    return "\n".join(lines), idx + 1


def _insert_after(text: str, anchor: str, new: str) -> tuple[str, int]:
    lines = text.split("\n")
    idx = lines.index(anchor) + 1
    lines.insert(idx, new)
    return "\n".join(lines), idx + 1


BAD_CASES = {
    "unknown_key": lambda g: _insert_after(g, "group.id = g", "frobnicate = 1"),
    "bad_number": lambda g: _replace_line(g, "size.ms = 10000", "size.ms = ten"),
    "unknown_window_type": lambda g: _replace_line(g, "type = tumbling", "type = rolling"),
    "measure_unknown_field": lambda g: _replace_line(
        g, "expr = 0.7*price + 0.3*quantity", "expr = 0.7*price + 0.3*nosuchfield"
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_reports_file_and_line(dmpflow, tmp_path, case):
    good = GOOD.replace("STATE_DIR", str(tmp_path / "state"))
    text, line = BAD_CASES[case](good)
    cfg = dmpflow.write_config(text, f"{case}.conf")
    proc = dmpflow.run("run", "-c", cfg, timeout=15)
    err = proc.stderr
    assert proc.popen.returncode == 2, f"exit code {proc.popen.returncode}, want 2; stderr:\n{err}"
    assert f"{cfg}:{line}:" in err, f"want `{cfg}:{line}: message` on stderr, got:\n{err}"


def test_missing_input_topic(dmpflow, tmp_path):
    good = GOOD.replace("STATE_DIR", str(tmp_path / "state"))
    lines = good.split("\n")
    lines.remove("topic = events")
    cfg = dmpflow.write_config("\n".join(lines), "no_topic.conf")
    proc = dmpflow.run("run", "-c", cfg, timeout=15)
    err = proc.stderr
    assert proc.popen.returncode == 2, f"exit code {proc.popen.returncode}, want 2; stderr:\n{err}"
    assert re.search(re.escape(str(cfg)) + r"(:\d+)?:", err), f"want `{cfg}[:LINE]: message`, got:\n{err}"
    assert "topic" in err, err
