"""Dead letters end to end: poison records of every error class, planted among
good events, go to [output] dlq.topic unchanged (same key, same value) with
headers naming their source (topic, partition, offset, timestamp) and their
error (class, message); they are counted per class; the good events around
them aggregate exactly as the independent reference (reference.py) says.

Poison records are built by hand below (a small Avro encoder checked against
fastavro on every good event), in records of tests/schemas/poison_event.avsc,
whose nullable time, enum and recursive record make every class reachable."""

from __future__ import annotations

import io
import json
import random
import re
import struct
import time
from collections import Counter
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from reference import Measure, Window, compute
from support import REPO, _strip_logical, assert_matches_reference, make_config, make_events

PARTITIONS = 3
POISON_SCHEMA_PATH = REPO / "tests" / "schemas" / "poison_event.avsc"
POISON_SCHEMA = fastavro.parse_schema(_strip_logical(json.loads(POISON_SCHEMA_PATH.read_text())))
COLORS = ["RED", "GREEN", "BLUE"]

MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks"))]

# The classes of src/decoder.h (dmp_decode_err_name), every one planted.
ALL_CLASSES = {"truncated", "varint", "length", "union", "enum", "int_range", "trailing",
               "depth", "null_time", "time_range", "nonfinite", "key_too_long"}


# ---- a minimal Avro binary encoder, for the poison ----

def avro_long(n: int) -> bytes:
    z = ((n << 1) ^ (n >> 63)) & (2**64 - 1)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def avro_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return avro_long(len(b)) + b


def avro_tree(kids: list) -> bytes:
    """Tree = {kids: array<Tree>}; a tree is given as its list of kids."""
    if not kids:
        return avro_long(0)
    return avro_long(len(kids)) + b"".join(avro_tree(k) for k in kids) + avro_long(0)


def nested(levels: int) -> list:
    t: list = []
    for _ in range(levels):
        t = [t]
    return t


def fields_of(ev: dict[str, Any]) -> list[bytes]:
    """The encoding of each field of a PoisonEvent, in schema order."""
    return [
        avro_str(ev["user_id"]),
        avro_str(ev["segment"]),
        avro_long(1) + avro_long(ev["ts"]),
        struct.pack("<d", ev["price"]),
        avro_long(ev["quantity"]),
        avro_long(0) if ev["clicks"] is None else avro_long(1) + avro_long(ev["clicks"]),
        avro_long(COLORS.index(ev["color"])),
        avro_tree(ev["tree"]),
    ]


def encode_good(ev: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, POISON_SCHEMA, {**ev, "tree": to_fastavro(ev["tree"])})
    return buf.getvalue()


def to_fastavro(kids: list) -> dict:
    return {"kids": [to_fastavro(k) for k in kids]}


def replace(f: list[bytes], i: int, b: bytes) -> bytes:
    return b"".join(f[:i] + [b] + f[i + 1:])


# Each maker turns a good event's fields into a poison record of its class.
POISON_MAKERS = {
    "truncated": lambda f: b"".join(f[:3]) + f[3][:5],            # inside price
    "varint": lambda f: b"\x80" * 10 + b"\x01" + b"".join(f[1:]),  # 11-byte length
    "length": lambda f: avro_long(-1) + b"".join(f),               # negative length
    "length_oversize": lambda f: avro_long(100_000) + b"".join(f),
    "union": lambda f: replace(f, 5, avro_long(2) + avro_long(7)), # clicks branch 2 of 2
    "enum": lambda f: replace(f, 6, avro_long(3)),                 # 3 symbols
    "int_range": lambda f: replace(f, 4, avro_long(2**31)),        # quantity
    "trailing": lambda f: b"".join(f) + b"\x00",
    "depth": lambda f: replace(f, 7, avro_tree(nested(70))),       # deeper than 64
    "null_time": lambda f: replace(f, 2, avro_long(0)),
    "time_range": lambda f: replace(f, 2, avro_long(1) + avro_long(2**61)),
    # well-formed Avro, but a measure field is NaN / infinite ([input] nonfinite's default)
    "nonfinite": lambda f: replace(f, 3, struct.pack("<d", float("nan"))),
    "nonfinite_inf": lambda f: replace(f, 3, struct.pack("<d", float("-inf"))),
    # well-formed, but the key (user_id) is longer than state keeps (65,535 bytes)
    "key_too_long": lambda f: replace(f, 0, avro_str("k" * 65_536)),
}


def class_of(maker: str) -> str:
    return {"length_oversize": "length", "nonfinite_inf": "nonfinite"}.get(maker, maker)


def read_all(bootstrap: str, topic: str, partitions: int, count: int, timeout: float) -> list:
    """Every message of topic from the beginning until `count` were read:
    (partition, offset, key, value, headers dict, timestamp ms)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-reader-{topic}",
                  "enable.auto.commit": False, "log_level": 3})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.2):
            if m.error():
                continue
            hdrs = {k: v.decode("utf-8") for k, v in (m.headers() or [])}
            out.append((m.partition(), m.offset(), m.key(), m.value(), hdrs, m.timestamp()[1]))
    c.close()
    return out


def test_poison_records_go_to_dlq_with_headers(kafka, dmpflow, tmp_path):
    rng = random.Random(99)
    good = make_events(6_000, 5, keys=40, step_ms=10, ooo=0.05, max_delay_ms=3_000, null_clicks=0.2)
    for ev in good:
        ev["color"] = rng.choice(COLORS)
        ev["tree"] = rng.choice([[], [[]], [[], [[]]]])
        assert b"".join(fields_of(ev)) == encode_good(ev), ev  # the hand encoder is right

    # 3 poison records of each kind, keyed like good events, at random places
    events: list[dict[str, Any]] = list(good)
    for maker in sorted(POISON_MAKERS):
        for _ in range(3):
            tmpl = rng.choice(good)
            raw = POISON_MAKERS[maker](fields_of(tmpl))
            events.insert(rng.randrange(len(events) + 1),
                          {"user_id": tmpl["user_id"], "__raw": raw, "__class": class_of(maker)})
    n_poison = len(events) - len(good)

    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    dlq = kafka.topic(2, "dlq")
    produced = kafka.produce(src, events, PARTITIONS,
                             encode=lambda ev: ev["__raw"] if "__raw" in ev else encode_good(ev))

    # offsets: a fresh topic written by one idempotent producer numbers each
    # partition's messages 0, 1, 2... in produce order (checked below)
    expected_dead: dict[tuple[int, int], dict[str, Any]] = {}
    next_offset: Counter = Counter()
    for part, _key, ev in produced:
        off = next_offset[part]
        next_offset[part] += 1
        if "__raw" in ev:
            expected_dead[(part, off)] = ev
    ref = compute([e for e in produced if "__raw" not in e[2]], WINDOWS,
                  [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert len(ref.results) > 100

    source = {(p, o): (k, v, ts) for p, o, k, v, _h, ts in
              read_all(kafka.bootstrap, src, PARTITIONS, len(events), timeout=30)}
    assert len(source) == len(events)
    for (p, o), ev in expected_dead.items():
        assert source[(p, o)][1] == ev["__raw"], f"offset numbering assumption broken at p{p}@{o}"

    cfg = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=f"{src}-g", measures=MEASURES, windows=WINDOWS, commit_interval_ms=200,
        schema=POISON_SCHEMA_PATH, dlq_topic=dlq))
    reader = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", cfg)
    reader.until(len(ref.results), timeout=60)
    dead = read_all(kafka.bootstrap, dlq, 2, n_poison, timeout=30)
    assert proc.poll() is None, f"dmpflow exited early with code {proc.poll()}"
    rc = dmpflow.stop(proc, timeout=10)
    reader.drain(2.0)
    assert rc == 0, f"exit code {rc} after SIGTERM"

    # the DLQ holds exactly the poison records, unchanged, with their headers
    got: dict[tuple[int, int], dict[str, str]] = {}
    for _p, _o, key, value, h, _ts in dead:
        where = (int(h["dmpflow.source.partition"]), int(h["dmpflow.source.offset"]))
        assert where not in got, f"dead-lettered twice: {where}"
        got[where] = h
        skey, svalue, sts = source[where]
        assert value == svalue and key == skey, f"dead letter {where} differs from the source record"
        assert h["dmpflow.source.topic"] == src
        assert int(h["dmpflow.source.timestamp"]) == sts
        assert h["dmpflow.error.class"] == expected_dead[where]["__class"], (where, h)
        assert h["dmpflow.error.message"], h
    assert set(got) == set(expected_dead), (
        f"missing {sorted(set(expected_dead) - set(got))}, unexpected {sorted(set(got) - set(expected_dead))}")
    want_counts = Counter(ev["__class"] for ev in expected_dead.values())
    assert set(want_counts) == ALL_CLASSES

    # counted per class: dmpflow's own summary at stop
    m = re.search(r"dead letters: (.*)$", proc.stderr, re.M)
    assert m, proc.stderr[-2000:]
    logged = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    assert logged == dict(want_counts)

    # the good records around them aggregate exactly as the reference says
    assert not reader.errors, reader.errors[:5]
    assert_matches_reference(reader.records, ref)


def test_long_keys_dead_lettered_not_merged(kafka, dmpflow, tmp_path):
    """Issue 22: two user_ids of 65,635 bytes sharing their first 65,535
    were combined into one result (count 4, sum 70 instead of 28 and 42),
    under a truncated key. A key longer than 65,535 bytes (the limit of
    state, DMP_KEY_MAX) is a dead letter, class key_too_long; a key of
    exactly 65,535 bytes is aggregated exactly."""
    from support import encode_event
    t0 = 1_700_000_003_000
    at_limit = "a" * 65_535
    over = ["b" * 65_535 + "1" * 100, "b" * 65_535 + "2" * 100]
    good = make_events(1_500, 7, keys=20, t0=t0, ooo=0.0)

    def ev(user, ts, price):
        return {"user_id": user, "segment": "s", "ts": ts, "price": price, "quantity": 0,
                "clicks": None}
    good += [ev(at_limit, t0 + 1_000, 10.0), ev(at_limit, t0 + 2_000, 20.0)]
    poison = [ev(over[0], t0 + 1_000, 10.0), ev(over[0], t0 + 2_000, 30.0),
              ev(over[1], t0 + 1_000, 20.0), ev(over[1], t0 + 2_000, 40.0)]
    good.sort(key=lambda e: e["ts"])
    events = good[:700] + poison + good[700:]
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    dlq = kafka.topic(1, "dlq")
    produced = kafka.produce(src, events, PARTITIONS)
    windows = [Window("t10", "tumbling", size_ms=10_000, grace_ms=0, measures=("score",))]
    measures = {"score": "1*price"}
    ref = compute([r for r in produced if r[1] not in over], windows,
                  [Measure.parse(n, x) for n, x in measures.items()])
    assert any(k[1] == at_limit for k in ref.results)
    cfg = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=f"{src}-g", measures=measures, windows=windows, commit_interval_ms=200,
        dlq_topic=dlq))
    reader = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", cfg)
    reader.until(len(ref.results), timeout=60)
    dead = read_all(kafka.bootstrap, dlq, 1, len(poison), timeout=30)
    assert dmpflow.stop(proc, timeout=10) == 0, proc.stderr[-2000:]
    reader.drain(2.0)

    assert len(dead) == len(poison), f"{len(dead)} dead letters, want {len(poison)}"
    want = sorted(encode_event(p) for p in poison)
    assert sorted(d[3] for d in dead) == want  # unchanged payloads
    assert sorted(d[2] for d in dead) == sorted(p["user_id"].encode() for p in poison)
    for d in dead:
        assert d[4]["dmpflow.error.class"] == "key_too_long", d[4]
        assert "65535" in d[4]["dmpflow.error.message"], d[4]
    assert "key_too_long=4" in proc.stderr, proc.stderr[-2000:]
    assert all(len(r[3]["key"].encode()) <= 65_535 for r in reader.records)
    assert_matches_reference(reader.records, ref)
