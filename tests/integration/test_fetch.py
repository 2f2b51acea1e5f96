"""The consumer's fetcher with a short prefetch queue (src/fetchwake.h).

librdkafka 2.0 stops fetching once the consumer queue holds
queued.min.messages and sleeps up to 1 s unless something wakes its broker
thread; dmpflow's waker does that when the queue drains. Here the queue is
tiny (500 messages) and fetches are small (16 KiB per partition, records in
batches of 200), so the input takes ~100 fetch responses: a fetcher that
slept after each would need ~100 s. The test requires every result to
equal the reference, wake-up rounds to be counted in /metrics, and the
input to be consumed within a liveness bound (30 s) a sleeping fetcher
cannot meet -- not a speed figure (those are in `make bench`)."""

from __future__ import annotations

import time

from reference import Measure, Window, compute
from support import assert_matches_reference, make_config, make_events
from test_offsets import wait_ready
from test_service import free_port, metrics, total

PARTITIONS = 4
EVENTS = 40_000
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=1_000, measures=("score",))]


def test_short_queue_keeps_fetching(kafka, dmpflow, tmp_path):
    events = make_events(EVENTS, 71, keys=40, step_ms=5, ooo=0.05, max_delay_ms=500)
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    produced = kafka.produce(src, events, PARTITIONS,
                             producer_conf={"batch.num.messages": 200, "linger.ms": 5})
    ref = compute(produced, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert len(ref.results) > 100
    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200)
    cfg = cfg.replace("[kafka]\n", "[kafka]\nqueued.min.messages = 500\n"
                      "max.partition.fetch.bytes = 16384\n", 1)
    cfg += f"\n[http]\nport = {port}\n"
    reader = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    wait_ready(port, proc)
    t0 = time.monotonic()
    deadline = t0 + 30
    while time.monotonic() < deadline:
        m = metrics(port)
        if total(m, "dmpflow_events_in_total") >= EVENTS:
            break
        time.sleep(0.1)
    took = time.monotonic() - t0
    m = metrics(port)
    assert total(m, "dmpflow_events_in_total") == EVENTS, (
        f"{total(m, 'dmpflow_events_in_total'):.0f} of {EVENTS} events in {took:.1f} s: "
        "the fetcher sleeps while the queue is short")
    assert m["dmpflow_fetch_wakeups_total"] > 0
    assert reader.until(len(ref.results), timeout=60)
    reader.drain(1.0)
    assert_matches_reference(reader.records, ref)
    assert dmpflow.stop(proc) == 0
    print(f"{EVENTS} events in {took:.1f} s, {m['dmpflow_fetch_wakeups_total']:.0f} wake-up rounds")
