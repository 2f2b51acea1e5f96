"""dmpflow and a broker that goes away (issue 22), on a broker of the tests'
own (scripts/kafka-local on ports and a data directory of its own:
support.PrivateBroker), which they stop and start; the session's broker is
never touched.

- Startup before the broker: dmpflow keeps trying (one line per backoff
  step), /readyz says why it is not ready, librdkafka's reconnect lines are
  counted rather than repeated; when the broker comes, it processes the
  input as the independent reference says. With [input] startup.timeout.ms
  it gives up after that long: exit 1, saying why.
- Bounces: the broker is stopped and started 3 times while a generated
  stream is processed; dmpflow never exits, and its results equal the
  reference computed from the input as stored: nothing lost, nothing
  counted twice, no result published twice.

Environment: BOUNCE_EVENTS (40 000), BOUNCE_SEED (random, printed)."""

from __future__ import annotations

import os
import random
import re
import time

import pytest
from conftest import KafkaHelper
from reference import Measure, Window, compute
from support import PrivateBroker, assert_matches_reference, committed_offsets, decode_event, \
    end_offsets, free_port, http_get, make_config, make_events

PARTITIONS = 4
MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [
    Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks")),
    Window("hop20s", "hopping", size_ms=20_000, advance_ms=10_000, grace_ms=1_000,
           measures=("score",)),
]
EVENTS = int(os.environ.get("BOUNCE_EVENTS", "40000"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = PrivateBroker(tmp_path_factory.mktemp("kafka"))
    b.start()
    yield b
    b.wipe()


@pytest.fixture
def own(broker, request):
    h = KafkaHelper(broker.bootstrap, request.node.name)
    yield h
    h.cleanup()


def lines_with(stderr: str, what: str) -> int:
    return sum(1 for l in stderr.splitlines() if what in l)


def test_startup_waits_for_the_broker(broker, own, dmpflow, tmp_path):
    events = make_events(3_000, 17, keys=30, ooo=0.05, max_delay_ms=3_000)
    src, dst = own.topic(PARTITIONS, "in"), own.topic(PARTITIONS, "out")
    produced = own.produce(src, events, PARTITIONS)
    ref = compute(produced, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
    reader = own.reader(dst)
    broker.stop()  # dmpflow starts before its broker
    try:
        port = free_port()
        conf = dmpflow.write_config(make_config(
            bootstrap=broker.bootstrap, input_topic=src, output_topic=dst,
            state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
            windows=WINDOWS, commit_interval_ms=200) + f"\n[http]\nport = {port}\n")
        proc = dmpflow.start("run", "-c", conf)
        deadline = time.monotonic() + 60
        # not ready, and it says why; a few backoff steps pass
        while lines_with(proc.stderr, "still does not answer") < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr[-3000:]
            time.sleep(0.2)
        status, body = http_get(port, "/readyz")
        assert status == 503, body
        assert body.startswith(f"not ready: waiting for the Kafka cluster at {broker.bootstrap}")
        assert "Connection refused" in body, body
    finally:
        broker.start()
    assert reader.until(len(ref.results), timeout=90), (len(reader.records), proc.stderr[-3000:])
    reader.drain(1.0)
    assert http_get(port, "/readyz")[0] == 200
    assert proc.poll() is None, proc.stderr[-3000:]
    assert dmpflow.stop(proc) == 0
    assert_matches_reference(reader.records, ref)
    err = proc.stderr
    assert f"the Kafka cluster at {broker.bootstrap} answered after" in err
    tries = lines_with(err, "does not answer")
    refused = lines_with(err, "Connection refused")
    print(f"startup before the broker: {tries} lines of dmpflow's wait, {refused} lines "
          f"mentioning 'Connection refused', {len(err.splitlines())} log lines in all")
    # once per backoff step, and librdkafka's reconnects counted, not repeated
    assert refused <= 2 * tries + 4, err[-4000:]


def test_startup_gives_up_after_timeout(dmpflow, tmp_path):
    """[input] startup.timeout.ms: a cluster that never answers (nothing
    listens on its port) ends the wait with exit 1 and a message naming
    the cluster, the property and librdkafka's last error; before it, one
    line per backoff step."""
    bootstrap = f"127.0.0.1:{free_port()}"
    conf = dmpflow.write_config(make_config(
        bootstrap=bootstrap, input_topic="never-in", output_topic="never-out",
        state_dir=tmp_path / "state", group_id="never-g", measures=MEASURES, windows=WINDOWS))
    proc = dmpflow.run("run", "-c", conf, "-o", "input.startup.timeout.ms=4000", timeout=60)
    assert proc.popen.returncode == 1, proc.stderr[-3000:]
    want = (f"the Kafka cluster at {bootstrap} did not answer within 4 s "
            f"([input] startup.timeout.ms): ")
    line = next((l for l in proc.stderr.splitlines() if want in l), None)
    assert line and "Connection refused" in line, proc.stderr[-3000:]
    # tries at 0, 1, 3 s, then the timeout at 4 s: a line per step, not per reconnect
    assert lines_with(proc.stderr, "does not answer") <= 4, proc.stderr[-3000:]


def test_broker_bounces(broker, own, dmpflow, tmp_path):
    seed = int(os.environ.get("BOUNCE_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"bounce test: seed {seed}, {EVENTS} events")
    src, dst = own.topic(PARTITIONS, "in"), own.topic(PARTITIONS, "out")
    group = f"{src}-g"
    conf = dmpflow.write_config(make_config(
        bootstrap=broker.bootstrap, input_topic=src, output_topic=dst,
        state_dir=tmp_path / "state", group_id=group, measures=MEASURES, windows=WINDOWS,
        commit_interval_ms=200))
    proc = dmpflow.start("run", "-c", conf)
    # the stream arrives while the broker goes and comes
    gen = dmpflow.start("gen", "-b", broker.bootstrap, "-t", src, "-n", str(EVENTS),
                        "--keys", "200", "--groups", "5", "--seed", str(seed), "--ooo", "0.05",
                        "--max-delay-ms", "3000", "--rate", str(max(EVENTS // 60, 100)))
    for bounce in range(3):
        time.sleep(rng.uniform(2.0, 6.0))
        assert proc.poll() is None, f"dmpflow exited ({proc.poll()}):\n{proc.stderr[-3000:]}"
        broker.stop()
        time.sleep(rng.uniform(1.0, 4.0))
        assert proc.poll() is None, f"dmpflow exited ({proc.poll()}):\n{proc.stderr[-3000:]}"
        broker.start()
        print(f"bounce {bounce + 1}: broker back")
    assert gen.wait(180) == 0, f"gen failed:\n{gen.stderr[-2000:]}"

    end = end_offsets(broker.bootstrap, src, PARTITIONS)
    assert sum(end.values()) >= EVENTS, end  # (a producer retry may have written twice)
    deadline = time.monotonic() + 120
    while committed_offsets(broker.bootstrap, group, src, PARTITIONS) != end:
        assert proc.poll() is None, f"dmpflow exited ({proc.poll()}):\n{proc.stderr[-3000:]}"
        assert time.monotonic() < deadline, (committed_offsets(broker.bootstrap, group, src,
                                                               PARTITIONS), end)
        time.sleep(0.5)
    assert dmpflow.stop(proc, timeout=30) == 0, proc.stderr[-3000:]

    inp = own.reader(src, decode=decode_event)
    total = sum(end.values())
    assert inp.until(total, timeout=120), f"read {len(inp.records)} of {total} input events"
    events = [(p, key.decode(), ev) for p, off, key, ev in sorted(inp.records, key=lambda r: r[:2])]
    ref = compute(events, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])
    assert len(ref.results) > 1000, len(ref.results)
    out = own.reader(dst)
    out.until(len(ref.results), timeout=120)
    out.drain(2.0)
    assert not out.errors, out.errors[:5]
    refused = lines_with(proc.stderr, "Connection refused")
    print(f"bounce test: {broker.stops} stops; {len(out.records)} results for "
          f"{len(ref.results)} expected; {refused} log lines mentioning 'Connection refused'")
    # nothing lost, nothing counted twice, nothing published twice (each
    # bounce is shorter than the transaction timeout: no abort)
    assert "transaction aborted" not in proc.stderr, proc.stderr[-3000:]
    assert_matches_reference(out.records, ref)
    assert not re.search(r"\berror\b.*fatal", proc.stderr), proc.stderr[-3000:]
