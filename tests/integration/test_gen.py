"""`dmpflow gen`: the synthetic event generator."""

from __future__ import annotations

import json
from collections import defaultdict

from support import EVENT_SCHEMA_PATH, decode_event

PARTITIONS = 4
COUNT = 5_000


def _gen(kafka, dmpflow, topic: str, seed: int, count: int = COUNT):
    proc = dmpflow.run(
        "gen", "-b", kafka.bootstrap, "-t", topic, "-n", str(count),
        "--keys", "20", "--groups", "3", "--seed", str(seed),
        "--ooo", "0.1", "--max-delay-ms", "5000",
        timeout=60,
    )
    assert proc.popen.returncode == 0, f"gen exit code {proc.popen.returncode}; stderr:\n{proc.stderr}"
    assert (proc.stdout + proc.stderr).strip(), "gen printed no summary line"
    reader = kafka.reader(topic, decode=decode_event)
    reader.until(count, timeout=60)
    reader.drain(2.0)
    assert not reader.errors, reader.errors[:5]
    return reader.records


def _per_partition(records):
    out = defaultdict(list)
    for part, off, key, ev in sorted(records, key=lambda r: (r[0], r[1])):
        out[part].append((key, ev))
    return dict(out)


def test_gen_produces_decodable_keyed_events(kafka, dmpflow):
    topic = kafka.topic(PARTITIONS, "gen")
    records = _gen(kafka, dmpflow, topic, seed=42)
    assert len(records) == COUNT, f"{len(records)} records on {topic}, want {COUNT}"

    partition_of_key: dict[str, set[int]] = defaultdict(set)
    for part, off, key, ev in records:
        assert key == ev["user_id"].encode("utf-8"), f"kafka key {key!r} != user_id {ev['user_id']!r}"
        partition_of_key[ev["user_id"]].add(part)
    spread = {k: sorted(v) for k, v in partition_of_key.items() if len(v) > 1}
    assert not spread, f"keys in more than one partition: {spread}"
    assert 1 < len(partition_of_key) <= 20, sorted(partition_of_key)
    segments = {ev["segment"] for _, _, _, ev in records}
    assert 1 <= len(segments) <= 3, segments


def test_gen_same_seed_same_events(kafka, dmpflow):
    a = _gen(kafka, dmpflow, kafka.topic(PARTITIONS, "gen-a"), seed=7)
    b = _gen(kafka, dmpflow, kafka.topic(PARTITIONS, "gen-b"), seed=7)
    c = _gen(kafka, dmpflow, kafka.topic(PARTITIONS, "gen-c"), seed=8)
    assert len(a) == len(b) == len(c) == COUNT
    pa, pb, pc = _per_partition(a), _per_partition(b), _per_partition(c)
    assert pa == pb, "same seed gave different per-partition event sequences"
    assert pa != pc, "a different seed gave the same events"


def test_gen_confluent_framing_with_registry(kafka, dmpflow, registry):
    """--registry: the event schema is registered as <topic>-value and every
    record is in the Confluent wire format, which the standard
    AvroDeserializer decodes to the same events as the raw generator's."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = kafka.topic(PARTITIONS, "genreg")
    proc = dmpflow.run("gen", "-b", kafka.bootstrap, "-t", topic, "-n", "500", "--keys",
                       "20", "--groups", "3", "--seed", "42", "--ooo", "0.1",
                       "--max-delay-ms", "5000", "--registry", registry.url, timeout=60)
    assert proc.popen.returncode == 0, proc.stderr
    registered = registry.version(f"{topic}-value")
    assert json.loads(registered["schema"]) == json.loads(EVENT_SCHEMA_PATH.read_text())
    deser = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    reader = kafka.reader(topic, decode=lambda v: (v[:5], deser(v, ctx)))
    reader.until(500, timeout=60)
    assert not reader.errors, reader.errors[:3]
    framed = [ev for _, _, _, (head, ev) in reader.records
              if head == b"\x00" + registered["id"].to_bytes(4, "big")]
    assert len(framed) == 500
    raw_topic = kafka.topic(PARTITIONS, "genraw")
    raw = _gen(kafka, dmpflow, raw_topic, seed=42, count=500)
    key = lambda ev: (ev["user_id"], ev["ts"], ev["price"])  # noqa: E731
    norm = lambda ev: {**ev, "ts": ev["ts"] if isinstance(ev["ts"], int) else  # noqa: E731
                       int(ev["ts"].timestamp() * 1000)}
    assert sorted(map(key, map(norm, framed))) == sorted(key(ev) for _, _, _, ev in raw)
