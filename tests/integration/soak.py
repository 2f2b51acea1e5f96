#!/usr/bin/env python3
"""The soak (`make soak`, on demand; not in CI): dmpflow processes a stream
for SOAK_SECONDS (900) while it is killed with SIGKILL SOAK_KILLS (20) times
and restarted, and its broker is stopped and started SOAK_BOUNCES (5) times;
1 % of the input is poison of every dead-letter class (test_dlq.py's
makers). Then the published results are compared with the independent
reference (reference.py) computed from the input as stored, and the dead
letters with the poison produced. One line sums it up:

  soak: 900 s, 20 kills, 5 broker bounces, 612034 events (6120 poison):
  results 0 lost, 0 doubled, 14 duplicated; dead letters 0 lost, 3 duplicated: PASS

lost: a result of the reference never published (or a dead letter never
written); doubled: a published result whose values differ from the
reference (counted twice, or counted short); duplicated: published more
than once, identical copies (a kill between publishing and the commit
that records it: at-least-once output). PASS needs 0 lost, 0 doubled and
identical copies. Exit code 0 on PASS.

It runs its own broker (support.PrivateBroker: scripts/kafka-local on free
ports and a data directory of its own), never a session's.
Environment: SOAK_SECONDS, SOAK_KILLS, SOAK_BOUNCES, SOAK_RATE (events/s,
700), SOAK_SEED (random), DMPFLOW_BIN (build/dmpflow)."""

from __future__ import annotations

import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from reference import Measure, compute  # noqa: E402
from support import PrivateBroker, assert_matches_reference, committed_offsets, dmpflow_path, \
    end_offsets, make_config, make_events  # noqa: E402
from test_broker_bounce import MEASURES, PARTITIONS, WINDOWS  # noqa: E402
from test_dlq import COLORS, POISON_MAKERS, POISON_SCHEMA_PATH, class_of, encode_good, \
    fields_of, read_all  # noqa: E402

def log(msg: str) -> None:
    print(f"soak {time.strftime('%H:%M:%S')}: {msg}", flush=True)


RUNNING: list = []


class Dmpflow:
    """The dmpflow process, restarted after each kill."""

    def __init__(self, conf: Path, workdir: Path):
        RUNNING.append(self)
        import subprocess
        self.sp, self.conf, self.workdir = subprocess, conf, workdir
        self.proc = None
        self.runs = self.kills = 0
        self.early_exits: list[str] = []

    def start(self) -> None:
        self.runs += 1
        self.err = open(self.workdir / f"dmpflow-{self.runs}.log", "wb")
        self.proc = self.sp.Popen([str(dmpflow_path()), "run", "-c", str(self.conf)],
                                  stdin=self.sp.DEVNULL, stdout=self.err, stderr=self.err)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:  # never expected: note it and go on
            self.early_exits.append(f"run {self.runs} exited with {self.proc.returncode}")
            self.start()

    def kill(self) -> None:
        self.check_alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1
        self.start()

    def stop(self) -> int:
        self.check_alive()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def produce_stream(bootstrap: str, topic: str, seconds: float, rate: float, seed: int,
                   out: dict) -> None:
    """Events at `rate`/s for `seconds`, 1 % poison; out["poison"] counts
    the poison by class, out["events"] all records. The producer outlives
    broker bounces (it buffers and retries)."""
    rng = random.Random(seed)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                  "message.timeout.ms": 600_000, "log_level": 0})
    n = int(seconds * rate)
    events = make_events(n, seed, keys=300, step_ms=10, ooo=0.05, max_delay_ms=3_000)
    t0 = time.monotonic()
    poison: Counter = Counter()
    poison_values: set[bytes] = set()
    makers = sorted(POISON_MAKERS)
    for i, ev in enumerate(events):
        ev["color"] = rng.choice(COLORS)
        ev["tree"] = rng.choice([[], [[]]])
        if rng.random() < 0.01:
            maker = rng.choice(makers)
            value = POISON_MAKERS[maker](fields_of(ev))
            poison[class_of(maker)] += 1
            poison_values.add(value)
        else:
            value = encode_good(ev)
        while True:
            try:
                p.produce(topic, value=value, key=ev["user_id"].encode())
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        ahead = (i + 1) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    assert p.flush(600) == 0, "the soak's producer could not deliver everything"
    out["poison"], out["poison_values"], out["events"] = poison, poison_values, n


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "900"))
    kills = int(os.environ.get("SOAK_KILLS", "20"))
    bounces = int(os.environ.get("SOAK_BOUNCES", "5"))
    rate = float(os.environ.get("SOAK_RATE", "700"))
    seed = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="dmpflow-soak-"))
    log(f"seed {seed}, {seconds:.0f} s, {kills} kills, {bounces} broker bounces, "
        f"{rate:.0f} events/s; logs in {work}")
    broker = PrivateBroker(work / "kafka")
    # SIGTERM too ends in the finally: the broker and dmpflow do not outlive it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    broker.start()
    try:
        return run(broker, work, seconds, kills, bounces, rate, seed, rng)
    finally:
        for d in RUNNING:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
        broker.wipe()


def run(broker, work, seconds, kills, bounces, rate, seed, rng) -> int:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    src, dst, dlq = "soak-in", "soak-out", "soak-dlq"
    for f in admin.create_topics([NewTopic(src, PARTITIONS, 1), NewTopic(dst, PARTITIONS, 1),
                                  NewTopic(dlq, 1, 1)]).values():
        f.result(30)
    group = "soak-g"
    conf = work / "soak.conf"
    conf.write_text(make_config(
        bootstrap=broker.bootstrap, input_topic=src, output_topic=dst, state_dir=work / "state",
        group_id=group, measures=MEASURES, windows=WINDOWS, commit_interval_ms=200,
        schema=POISON_SCHEMA_PATH, dlq_topic=dlq) +
        # Dynamic membership (a killed instance's partitions move after its
        # session times out): with static membership (group.instance.id), a
        # session that times out while the broker is away is fenced when it
        # rejoins, a fatal consumer error (librdkafka #3437; docs/STATE.md).
        "\n[kafka]\nsession.timeout.ms = 10000\n")
    d = Dmpflow(conf, work)
    d.start()
    produced: dict = {}
    producer = threading.Thread(target=produce_stream,
                                args=(broker.bootstrap, src, seconds, rate, seed, produced))
    producer.start()
    # the chaos: kills and bounces at random moments of the stream
    t0 = time.monotonic()
    plan = sorted([(rng.uniform(0.03, 0.92) * seconds, "kill") for _ in range(kills)] +
                  [(rng.uniform(0.05, 0.85) * seconds, "bounce") for _ in range(bounces)])
    for at, what in plan:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        if what == "kill":
            d.kill()
            log(f"kill {d.kills}")
        else:
            d.check_alive()
            broker.stop()
            time.sleep(rng.uniform(1, 8))
            broker.start()
            log(f"broker bounce {broker.stops}")
    producer.join()
    assert "events" in produced, "the producer failed"

    # the last run catches up, then stops cleanly
    ends = end_offsets(broker.bootstrap, src, PARTITIONS)
    deadline = time.monotonic() + 600
    while True:
        got = committed_offsets(broker.bootstrap, group, src, PARTITIONS)
        if got == ends:
            break
        d.check_alive()
        if time.monotonic() > deadline:
            log(f"not caught up: committed {got} of {ends}")
            return 1
        time.sleep(1)
    rc = d.stop()

    # the reference, from the input as stored; the poison, by its bytes
    total = sum(ends.values())
    records = read_all(broker.bootstrap, src, PARTITIONS, total, timeout=600)
    good, poison_at = [], {}
    for p, off, _key, value, _h, _ts in sorted(records, key=lambda r: r[:2]):
        if value in produced["poison_values"]:
            poison_at[(p, off)] = value
        else:
            ev = decode_poison_schema(value)
            good.append((p, ev["user_id"], ev))
    ref = compute(good, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])

    out = _read_results(broker.bootstrap, dst, len(ref.results))
    seen: dict[tuple, list] = {}
    for rec in out:
        seen.setdefault((rec["window"], rec["key"], rec["start"], rec["measure"]), []).append(rec)
    lost = len(set(ref.results) - set(seen))
    extra = len(set(seen) - set(ref.results))
    duplicated = sum(len(v) - 1 for v in seen.values())
    differing_copies = sum(1 for v in seen.values() if any(r != v[0] for r in v[1:]))
    firsts = [(0, 0, k[1].encode(), v[0]) for k, v in seen.items()]
    doubled = 0
    try:
        assert_matches_reference(firsts, ref)
    except AssertionError as e:
        m = [l for l in str(e).splitlines() if "value mismatches=" in l]
        doubled = int(m[0].split("value mismatches=")[1].split()[0]) if m else -1
        (work / "mismatches.txt").write_text(str(e))

    dead = read_all(broker.bootstrap, dlq, 1, 1 << 62, timeout=30)
    dead_at = Counter((int(h["dmpflow.source.partition"]), int(h["dmpflow.source.offset"]))
                      for _p, _o, _k, _v, h, _t in dead)
    dl_lost = len(set(poison_at) - set(dead_at))
    dl_dup = sum(n - 1 for n in dead_at.values())
    dl_extra = len(set(dead_at) - set(poison_at))
    ok = (lost == 0 and doubled == 0 and extra == 0 and differing_copies == 0 and dl_lost == 0
          and dl_extra == 0 and rc == 0 and not d.early_exits)
    print(f"soak: {seconds:.0f} s, {d.kills} kills, {broker.stops} broker bounces, "
          f"{total} events ({len(poison_at)} poison); results {lost} lost, {doubled} doubled, "
          f"{duplicated} duplicated; dead letters {dl_lost} lost, {dl_dup} duplicated: "
          f"{'PASS' if ok else 'FAIL'}", flush=True)
    if ok:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"extra results {extra}, copies that differ {differing_copies}, dead letters not "
            f"poison {dl_extra}, last exit code {rc}, unexpected exits {d.early_exits}; "
            f"logs in {work}")
    return 0 if ok else 1


def decode_poison_schema(value: bytes) -> dict:
    import io

    import fastavro

    from test_dlq import POISON_SCHEMA
    return fastavro.schemaless_reader(io.BytesIO(value), POISON_SCHEMA, None)


def _read_results(bootstrap: str, topic: str, at_least: int) -> list:
    from support import decode_result
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-read-{time.time()}",
                  "enable.auto.commit": False, "log_level": 3})
    from confluent_kafka import OFFSET_BEGINNING
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out, idle = [], time.monotonic()
    while len(out) < at_least or time.monotonic() - idle < 5:
        msgs = c.consume(num_messages=10000, timeout=0.5)
        if msgs:
            idle = time.monotonic()
        out += [decode_result(m.value()) for m in msgs if not m.error()]
        if time.monotonic() - idle > 120:
            break
    c.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
