"""`dmpflow cat` against the real broker: the result, group, pattern, late and
dead-letter topics of a real run, read back with -c CONFIG, must equal what
the run published, decoded independently here (fastavro); dead letters show
their provenance headers, error class and exact payload (base64, hex); a
record that does not decode is an error line with its offset and cat goes on;
--partition, --offset, -n, --follow and the exit codes; the Confluent wire
format through a registry (--registry)."""

from __future__ import annotations

import base64
import copy
import json
import signal
import subprocess
import time

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from reference import Window
from reference_groups import Group, Pattern
from registry_proxy import RegistryProxy
from support import (EVENT_SCHEMA_PATH, REPO, decode_event, dmpflow_path, encode_event, make_config,
                     make_events)
from test_groups import GROUP_SCHEMA, PATTERN_SCHEMA, decoder, sections

PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=1_000, measures=("score",))]


def cat(*args: str, timeout: float = 60) -> tuple[int, list[dict], str]:
    """Runs `dmpflow cat ARGS`: exit code, the JSON lines, stderr."""
    p = subprocess.run([str(dmpflow_path()), "cat", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=timeout)
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    return p.returncode, lines, p.stderr


def by_position(lines: list[dict]) -> dict[tuple[int, int], dict]:
    out = {(ln["partition"], ln["offset"]): ln for ln in lines}
    assert len(out) == len(lines), "a record printed twice"
    return out


def assert_same(lines: list[dict], reader, what: str) -> None:
    """cat's lines equal the records the independent reader decoded."""
    got = by_position(lines)
    want = {(p, o): (k, rec, {n: v.decode() for n, v in h.items()})
            for (p, o, k, rec), h in zip(reader.records, reader.headers)}
    assert set(got) == set(want), (what, sorted(set(got) ^ set(want))[:5])
    for pos, (key, rec, headers) in want.items():
        line = got[pos]
        assert "error" not in line, (what, line)
        assert line["key"] == key.decode(), (what, pos)
        assert line["value"] == rec, (what, pos, line["value"], rec)  # floats exactly
        assert line["headers"] == headers, (what, pos)
        assert line["timestamp"] > 0 and line["topic"] == reader.topic


def test_cat_reads_what_a_run_published(kafka, dmpflow, tmp_path):
    events = make_events(6_000, 21, keys=30, step_ms=10, ooo=0.08, max_delay_ms=4_000,
                         null_clicks=0.3)
    good_far = dict(events[50], ts=2**61)  # decodes, but its time is out of range
    poison = [(b"\x02", "length"), (encode_event(events[300]) + b"\x00", "trailing"),
              (b"\x80" * 11, "varint"), (encode_event(good_far), "time_range")]
    records = list(events)
    for i, (raw, _cls) in enumerate(poison):
        records.insert(100 + 1000 * i, {"user_id": events[100 + 1000 * i]["user_id"], "__raw": raw})
    src = kafka.topic(PARTITIONS, "in")
    out, gtopic, ptopic = (kafka.topic(PARTITIONS, "out"), kafka.topic(1, "groups"),
                           kafka.topic(1, "patterns"))
    late, dlq = kafka.topic(PARTITIONS, "late"), kafka.topic(1, "dlq")
    kafka.produce(src, records, PARTITIONS,
                  encode=lambda ev: ev["__raw"] if "__raw" in ev else encode_event(ev))
    groups = [Group("seg", field="segment", windows=("t10",))]
    patterns = [Pattern("top", "topk", "t10", "score", source="group:seg", k=2),
                Pattern("odd", "anomaly", "t10", "score", z=1.5, min_count=3)]
    cfg_text = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=out,
                           state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                           windows=WINDOWS, commit_interval_ms=200, late_topic=late,
                           dlq_topic=dlq)
    cfg = dmpflow.write_config(cfg_text + "\n" + sections(groups, patterns, gtopic, ptopic))

    readers = {out: kafka.reader(out), gtopic: kafka.reader(gtopic, decode=decoder(GROUP_SCHEMA)),
               ptopic: kafka.reader(ptopic, decode=decoder(PATTERN_SCHEMA)),
               late: kafka.reader(late, decode=decode_event)}
    proc = dmpflow.start("run", "-c", cfg)
    readers[out].until(150, timeout=60)  # 30 keys x 6 windows
    readers[ptopic].until(10, timeout=60)
    time.sleep(1.5)  # the last commit
    assert dmpflow.stop(proc, timeout=15) == 0
    for r in readers.values():
        r.drain(1.5)
        assert not r.errors, r.errors[:3]
    assert len(readers[gtopic].records) > 20 and len(readers[late].records) > 10

    # results, groups, patterns, late copies: exactly what was published
    for topic, reader in readers.items():
        rc, lines, err = cat("-c", str(cfg), "-t", topic)
        assert rc == 0, err
        assert_same(lines, reader, topic)
    assert any(ln["value"]["window"] is None for ln in cat("-c", str(cfg), "-t", gtopic)[1])

    # dead letters: provenance headers, class, the exact payload; the value
    # when the payload decodes (time_range), null when it does not
    rc, lines, err = cat("-c", str(cfg), "-t", dlq)
    assert rc == 0, err
    assert sorted((base64.b64decode(ln["payload_base64"]), ln["error_class"]) for ln in lines) == \
        sorted(poison)
    for ln in lines:
        h = ln["headers"]
        assert h["dmpflow.source.topic"] == src and h["dmpflow.error.class"] == ln["error_class"]
        assert int(h["dmpflow.source.partition"]) in range(PARTITIONS)
        assert int(h["dmpflow.source.offset"]) >= 0 and ln["error_message"]
        if ln["error_class"] == "time_range":
            assert ln["value"] == good_far
        else:
            assert ln["value"] is None
    rc, hex_lines, _ = cat("-c", str(cfg), "-t", dlq, "--hex")
    assert sorted(bytes.fromhex(ln["payload_hex"]) for ln in hex_lines) == sorted(p for p, _ in poison)

    # --partition, --offset (from the end), -n
    res = readers[out].records
    p1 = [(p, o) for p, o, _k, _r in res if p == 1]
    rc, lines, _ = cat("-c", str(cfg), "-t", out, "--partition", "1")
    assert rc == 0 and sorted(by_position(lines)) == sorted(p1)
    rc, lines, _ = cat("-c", str(cfg), "-t", out, "--offset", "-2")
    last2 = {(p, o) for p in range(PARTITIONS)
             for o in sorted(o for q, o, _k, _r in res if q == p)[-2:]}
    assert rc == 0 and set(by_position(lines)) == last2
    rc, lines, _ = cat("-c", str(cfg), "-t", out, "--offset", str(p1[3][1]), "-p", "1")
    assert rc == 0 and sorted(by_position(lines)) == sorted(p1)[3:]
    rc, lines, _ = cat("-c", str(cfg), "-t", out, "-n", "7")
    assert rc == 0 and len(lines) == 7

    # the wrong schema: one error line per record, with its offset; cat goes on
    rc, lines, err = cat("-b", kafka.bootstrap, "-t", out, "--schema", str(EVENT_SCHEMA_PATH))
    assert rc == 0, err
    assert set(by_position(lines)) == {(p, o) for p, o, _k, _r in res}
    assert all(ln["error"] and ln["class"] and "value" not in ln for ln in lines), lines[:2]
    assert f"{len(res)} of {len(res)} records could not be decoded" in err
    # no schema at all: the bytes
    rc, lines, _ = cat("-b", kafka.bootstrap, "-t", out, "-n", "1", "-p", "0")
    assert rc == 0 and base64.b64decode(lines[0]["payload_base64"]) != b""


def test_cat_errors_follow_and_exit_codes(kafka, dmpflow, tmp_path):
    topic = kafka.topic(2, "mixed")
    events = make_events(5, 3, keys=2)
    p = Producer({"bootstrap.servers": kafka.bootstrap, "log_level": 3})
    for ev in events[:2]:
        p.produce(topic, encode_event(ev), key=ev["user_id"].encode(), partition=0,
                  headers=[("trace", b"abc"), ("bin", b"\xff\x00")])
    p.produce(topic, b"\x06abc", key=b"\xfe\xff", partition=0)  # truncated, a binary key
    p.produce(topic, encode_event(events[2]), key=None, partition=0)
    p.flush(30)
    schema = ["--schema", str(EVENT_SCHEMA_PATH)]
    rc, lines, err = cat("-b", kafka.bootstrap, "-t", topic, *schema)
    assert rc == 0, err
    assert [ln["offset"] for ln in lines] == [0, 1, 2, 3]
    assert lines[0]["value"] == events[0] and lines[1]["value"] == events[1]
    assert lines[0]["headers"] == {"trace": "abc", "bin": "\ufffd\u0000"}
    assert lines[2]["class"] == "truncated" and lines[2]["offset"] == 2 and "error" in lines[2]
    assert base64.b64decode(lines[2]["payload_base64"]) == b"\x06abc"
    assert lines[3]["key"] is None and lines[3]["value"] == events[2]
    assert "1 of 4 records could not be decoded" in err

    # --follow: what arrives later is printed; SIGTERM ends it with 0
    f = subprocess.Popen([str(dmpflow_path()), "cat", "-b", kafka.bootstrap, "-t", topic,
                          "--offset", "-1", "--follow", *schema], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(f.stdout.readline())["offset"] == 3
        p.produce(topic, encode_event(events[3]), key=b"k", partition=1)
        p.flush(30)
        line = json.loads(f.stdout.readline())
        assert (line["partition"], line["offset"], line["value"]) == (1, 0, events[3])
        f.send_signal(signal.SIGTERM)
        assert f.wait(timeout=15) == 0
    finally:
        f.kill()

    # exit codes: 2 usage or configuration, 1 runtime
    cfg = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic="in-x", output_topic="out-x",
        state_dir=tmp_path / "s", group_id="g", measures=MEASURES, windows=WINDOWS))
    for args in (["-b", kafka.bootstrap], ["-t", topic],
                 ["-b", kafka.bootstrap, "-t", topic, "-n", "x"],
                 ["-b", kafka.bootstrap, "-t", topic, "--from-beginning", "--offset", "1"],
                 ["-b", kafka.bootstrap, "-t", topic, "--schema", "/nonexistent.avsc"],
                 ["-b", kafka.bootstrap, "-t", topic, "--schema", "a", "--registry", "http://x"],
                 ["-c", str(cfg), "-t", topic],  # a topic the configuration does not know
                 ["-c", str(tmp_path / "missing.conf"), "-t", topic]):
        rc, _, err = cat(*args)
        assert rc == 2, (args, err)
    for args in (["-b", kafka.bootstrap, "-t", topic + "-nope"],
                 ["-b", kafka.bootstrap, "-t", topic, "--partition", "7"],
                 ["-b", kafka.bootstrap, "-t", topic, "--offset", "1000", "-p", "0"]):
        rc, _, err = cat(*args)
        assert rc == 1 and err, (args, err)


def test_cat_confluent_wire_format(kafka, dmpflow, registry):
    """Records of two writer schemas through the real registry (cat is given
    the proxy in front of it, which counts its requests)."""
    proxy = RegistryProxy(registry.url)
    try:
        client = SchemaRegistryClient({"url": registry.url})
        v1 = json.loads(EVENT_SCHEMA_PATH.read_text())
        v2 = copy.deepcopy(v1)
        v2["fields"].append({"name": "discount", "type": ["null", "double"], "default": None})
        topic = kafka.topic(1, "cf")
        ctx = SerializationContext(topic, MessageField.VALUE)
        sers = [AvroSerializer(client, json.dumps(v), conf={"auto.register.schemas": True})
                for v in (v1, v2)]
        events = make_events(6, 9, keys=3)
        want = [dict(ev, discount=0.5 if i % 3 == 0 else None) if i % 2 else ev
                for i, ev in enumerate(events)]
        p = Producer({"bootstrap.servers": kafka.bootstrap, "log_level": 3})
        for i, ev in enumerate(want):
            p.produce(topic, sers[i % 2](ev, ctx), key=ev["user_id"].encode(), partition=0)
        p.produce(topic, b"\x01nope", partition=0)
        p.flush(30)
        rc, lines, err = cat("-b", kafka.bootstrap, "-t", topic, "--registry", proxy.url)
        assert rc == 0, err
        assert [ln.get("value") for ln in lines[:6]] == want
        ids = [registry.version(f"{topic}-value", v)["id"] for v in (1, 2)]
        assert [ln["schema_id"] for ln in lines[:6]] == [ids[i % 2] for i in range(6)]
        assert lines[6]["class"] == "bad_magic" and lines[6]["offset"] == 6
        # each writer schema fetched once
        assert sorted(proxy.fetched_ids()) == sorted(ids)
        proxy.down = True  # a registry that answers 503 only: exit 1
        rc2, _, err2 = cat("-b", kafka.bootstrap, "-t", topic, "--registry", proxy.url,
                           timeout=120)
        assert rc2 == 1 and "registry" in err2, err2
    finally:
        proxy.close()
