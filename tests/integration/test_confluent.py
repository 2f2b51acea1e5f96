"""format = confluent end to end: events produced by confluent_kafka's
registry-aware AvroSerializer with three versions of the event schema on
one topic (v2 adds `discount` with a default, v3 removes `segment` and
promotes `quantity` from int to long) are read through one reader schema;
the results must equal the Python reference. dmpflow starts while the
registry does not answer: partitions wait (nothing is skipped or
dead-lettered) and everything is read once it answers. Records not in the
wire format, or with an unknown schema id, are dead letters. dmpflow
registers its result schema (subject <topic>-value) and frames its results,
which confluent_kafka's standard AvroDeserializer decodes.

The registry here is a test double (registry_double.py says why)."""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import re
import subprocess

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from reference import Measure, Window, compute
from registry_double import RegistryDouble
from support import EVENT_SCHEMA_PATH, REPO, assert_matches_reference, make_config, make_events

PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=tuple(MEASURES))]

V1 = json.loads(EVENT_SCHEMA_PATH.read_text())
V2 = copy.deepcopy(V1)
V2["fields"].append({"name": "discount", "type": "double", "default": 0.0})
V3 = copy.deepcopy(V2)
V3["fields"] = [f for f in V3["fields"] if f["name"] != "segment"]
for f in V3["fields"]:
    if f["name"] == "quantity":
        f["type"] = "long"


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ms(t) -> int:
    """fastavro gives timestamp-millis as datetime; the reference has ms."""
    if isinstance(t, datetime.datetime):
        return (t - EPOCH) // datetime.timedelta(milliseconds=1)
    return t


def test_three_writer_versions_through_registry(kafka, dmpflow, tmp_path):
    registry = RegistryDouble()
    try:
        client = SchemaRegistryClient({"url": registry.url})
        serializers = [AvroSerializer(client, json.dumps(v), conf={"auto.register.schemas": True})
                       for v in (V1, V2, V3)]
        events = make_events(9_000, 8, keys=40, step_ms=10, ooo=0.05, max_delay_ms=3_000,
                             null_clicks=0.3)
        third = len(events) // 3
        src = kafka.topic(PARTITIONS, "in")
        dst = kafka.topic(PARTITIONS, "out")
        ctx = SerializationContext(src, MessageField.VALUE)

        def encode(ev):
            if "__raw" in ev:
                return ev["__raw"]
            v = ev["__v"]
            rec = {k: x for k, x in ev.items() if k != "__v"}
            if v >= 1:
                rec["discount"] = 0.25
            if v >= 2:
                del rec["segment"]
            return serializers[v](rec, ctx)

        for i, ev in enumerate(events):
            ev["__v"] = min(i // third, 2)
        poison = [{"user_id": events[5]["user_id"], "__raw": b"\x01not-confluent"},
                  {"user_id": events[6]["user_id"], "__raw": b"\x00\x00\x00\x03\xe7\x02"}]
        produced = kafka.produce(src, events[:4000] + poison + events[4000:], PARTITIONS,
                                 encode=encode)
        assert len(registry.schemas) == 3, registry.schemas  # three versions registered
        good = [(p, k, e) for p, k, e in produced if "__raw" not in e]
        ref = compute(good, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
        assert len(ref.results) > 100

        cfg = dmpflow.write_config(make_config(
            bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
            state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES, windows=WINDOWS,
            commit_interval_ms=200, input_format="confluent",
            reader_schema=REPO / "tests" / "schemas" / "evolution" / "reader_confluent.avsc",
            input_extra=[f"registry.url = {registry.url}", "registry.timeout.ms = 500",
                         "registry.pause.ms = 200"]))
        deserializer = AvroDeserializer(client)  # writer schema by id, from the registry
        out_ctx = SerializationContext(dst, MessageField.VALUE)

        def decode(value: bytes):
            rec = deserializer(value, out_ctx)
            return {**rec, "start": ms(rec["start"]), "end": ms(rec["end"])}

        reader = kafka.reader(dst, decode=decode)

        registry.lookups_down = True  # dmpflow can register, not fetch writer schemas
        proc = dmpflow.start("run", "-c", cfg)
        reader.until(1, timeout=6)
        assert proc.poll() is None, f"dmpflow exited with {proc.poll()} while the registry was down"
        assert not reader.records, "results published while no writer schema could be had"
        assert re.search(r"partition \d+ paused at offset \d+: schema registry unavailable",
                         proc.stderr), proc.stderr[-2000:]
        registry.lookups_down = False

        reader.until(len(ref.results), timeout=60)
        assert proc.poll() is None, f"dmpflow exited early with code {proc.poll()}"
        assert dmpflow.stop(proc, timeout=10) == 0
        reader.drain(2.0)
        assert not reader.errors, reader.errors[:5]
        m = re.search(r"dead letters: (.*)$", proc.stderr, re.M)
        assert m and m.group(1).split() == ["bad_magic=1", "unknown_schema=1"], proc.stderr[-2000:]
        # every result was framed with the registered result schema's id
        out_id = registry.subjects[f"{dst}-value"][-1]
        assert json.loads(registry.schemas[out_id]) == json.loads(
            (REPO / "schemas" / "window_result.avsc").read_text())
        assert_matches_reference(reader.records, ref)
        # each writer schema was fetched once (cached by id)
        fetched = sorted(p for meth, p, st in registry.requests if meth == "GET" and st == 200
                         and p.startswith("/schemas/ids/") and p != f"/schemas/ids/{out_id}")
        assert fetched == ["/schemas/ids/1", "/schemas/ids/2", "/schemas/ids/3"], fetched
    finally:
        registry.close()


def self_signed_cert(tmp_path):
    """A certificate for 127.0.0.1 (its own CA) and its key, made with openssl."""
    cert, key = tmp_path / "registry.pem", tmp_path / "registry.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_decimal_through_tls_registry_with_basic_auth(kafka, dmpflow, tmp_path):
    """Prices written as Avro decimals (bytes, scale 2) by the standard
    AvroSerializer, through a registry served over HTTPS (verified with
    [input] registry.ssl.ca.location) that requires basic authentication.
    With a wrong password dmpflow waits (partitions paused, nothing
    dead-lettered or published, the 401 in the log); with the right one every
    result equals the reference computed on the decimals' exact values."""
    cert, key = self_signed_cert(tmp_path)
    registry = RegistryDouble(tls=(str(cert), str(key)), basic_auth=("dmp", "s3cret"))
    try:
        assert registry.url.startswith("https://")
        schema = copy.deepcopy(V1)
        for f in schema["fields"]:
            if f["name"] == "price":
                f["type"] = {"type": "bytes", "logicalType": "decimal", "precision": 24,
                             "scale": 2}
        reader_path = tmp_path / "decimal_event.avsc"
        reader_path.write_text(json.dumps(schema))
        client = SchemaRegistryClient({"url": registry.url, "ssl.ca.location": str(cert),
                                       "basic.auth.user.info": "dmp:s3cret"})
        ser = AvroSerializer(client, json.dumps(schema), conf={"auto.register.schemas": True})
        events = make_events(6_000, 31, keys=30, step_ms=10, ooo=0.05, max_delay_ms=3_000,
                             null_clicks=0.3)
        for i, ev in enumerate(events):  # cents, some negative, some large
            cents = round(ev["price"] * 100) * (-1 if i % 7 == 0 else 1) * (10**13 if i % 11 == 0 else 1)
            ev["price"] = decimal.Decimal(cents).scaleb(-2)
        src = kafka.topic(PARTITIONS, "in")
        dst = kafka.topic(PARTITIONS, "out")
        ctx = SerializationContext(src, MessageField.VALUE)
        produced = kafka.produce(src, events, PARTITIONS, encode=lambda ev: ser(ev, ctx))
        # the reference sees each decimal's exact value as the nearest double
        ref = compute([(p, k, {**e, "price": float(e["price"])}) for p, k, e in produced],
                      WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
        assert len(ref.results) > 100

        def config(password):
            return dmpflow.write_config(make_config(
                bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                windows=WINDOWS, commit_interval_ms=200, input_format="confluent",
                reader_schema=reader_path, dlq_topic=f"{src}-dlq",
                input_extra=[f"registry.url = {registry.url}",
                             f"registry.ssl.ca.location = {cert}",
                             f"registry.basic.auth.user.info = dmp:{password}",
                             "registry.timeout.ms = 500", "registry.pause.ms = 200"]))

        out_ctx = SerializationContext(dst, MessageField.VALUE)
        deserializer = AvroDeserializer(client)
        reader = kafka.reader(dst, decode=lambda v: (lambda r: {**r, "start": ms(r["start"]),
                                                                 "end": ms(r["end"])})(
            deserializer(v, out_ctx)))

        # wrong password: dmpflow cannot register its output schema: a clear
        # error at startup, exit code 1, nothing consumed
        proc = dmpflow.run("run", "-c", config("Wr0ngPa55"), timeout=30)
        assert proc.poll() == 1, proc.stderr[-2000:]
        assert "401" in proc.stderr and "Unauthorized" in proc.stderr, proc.stderr[-2000:]
        assert "Wr0ngPa55" not in proc.stderr  # no credentials in the log

        proc = dmpflow.start("run", "-c", config("s3cret"))
        reader.until(len(ref.results), timeout=60)
        assert proc.poll() is None, f"dmpflow exited early with code {proc.poll()}"
        assert dmpflow.stop(proc, timeout=10) == 0
        reader.drain(2.0)
        assert not reader.errors, reader.errors[:5]
        assert "0 decode errors; dead letters: none" in proc.stderr, proc.stderr[-2000:]
        assert_matches_reference(reader.records, ref)
        gets = [p for meth, p, st in registry.requests if meth == "GET" and st == 200]
        assert "/schemas/ids/1" in gets  # fetched over TLS with the credentials
    finally:
        registry.close()
