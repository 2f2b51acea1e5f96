"""Repeated errors are counted, not repeated (issue 22: an output topic that
refused every result wrote one error line per result, 231,561 lines in a
second). Each kind of error is written once, then one line per interval
([log] repeat.interval.ms) gives the count of the rest and the first of
them; the counts add up to every error."""

from __future__ import annotations

import re

from confluent_kafka.admin import NewTopic

from support import counted_lines as counted, make_config, make_events
from reference import Window

MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t1", "tumbling", size_ms=1_000, grace_ms=0, measures=("score",))]


def test_refused_results_counted_not_repeated(kafka, dmpflow, tmp_path):
    src = kafka.topic(2, "in")
    # every result is larger than the topic takes: each delivery fails
    dst = f"{kafka.prefix}-small-out"
    kafka.admin.create_topics([NewTopic(dst, 1, 1, config={"max.message.bytes": "60"})])[dst].result(30)
    kafka.topics.append(dst)
    kafka.produce(src, make_events(20_000, 3, keys=500, step_ms=10, ooo=0.0), 2)
    conf = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=f"{src}-g", measures=MEASURES, windows=WINDOWS, commit_interval_ms=1000))
    proc = dmpflow.run("run", "-c", conf, timeout=120)
    assert proc.popen.returncode == 1, proc.stderr[-3000:]
    m = re.search(r"dmpflow: (\d+) results could not be published; not committing", proc.stderr)
    assert m, proc.stderr[-3000:]
    failed = int(m.group(1))
    assert failed > 1000, failed
    direct, count = counted(proc.stderr, f"result delivery to {dst} failed")
    print(f"{failed} refused results: {direct} lines written, {count} counted; "
          f"{len(proc.stderr.splitlines())} log lines in all")
    assert direct + count == failed  # every one accounted for
    assert direct <= 3, direct       # not one line each
    assert len(proc.stderr.splitlines()) < 120


def test_dead_letters_counted_not_repeated(kafka, dmpflow, tmp_path):
    """A dead letter per record: one line per class per interval, the counts
    adding up to the dead letters dmpflow reports at stop."""
    import time

    from support import encode_event, free_port, http_get
    events = make_events(3_000, 4, keys=50, step_ms=10, ooo=0.0)
    records = []
    for i, ev in enumerate(events):
        records.append(ev)
        if i % 3 == 0:  # 1,000 records whose first string runs past their end
            records.append({"user_id": ev["user_id"], "__raw": b"\x02"})
    src = kafka.topic(2, "in")
    dst = kafka.topic(2, "out")
    kafka.produce(src, records, 2, encode=lambda e: e["__raw"] if "__raw" in e else encode_event(e))
    port = free_port()
    conf = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=f"{src}-g", measures=MEASURES, windows=WINDOWS, commit_interval_ms=200)
        + f"\n[http]\nport = {port}\n")
    proc = dmpflow.start("run", "-c", conf)
    deadline = time.monotonic() + 60
    while True:
        status, text = http_get(port, "/metrics")
        m = re.search(r'^dmpflow_events_total(?:\{[^}]*\})? (\d+)', text, re.M) if status == 200 else None
        if m and int(m.group(1)) >= len(records):
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr[-3000:]
        time.sleep(0.2)
    assert dmpflow.stop(proc) == 0, proc.stderr[-3000:]
    assert "dead letters: length=1000" in proc.stderr, proc.stderr[-3000:]
    direct, count = counted(proc.stderr, ": length: ")
    print(f"1000 dead letters: {direct} lines written, {count} counted")
    assert direct + count == 1000
    assert direct <= 10, direct
