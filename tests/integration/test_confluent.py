"""format = confluent end to end, against a REAL schema registry: Apicurio
Registry's Confluent-compatible API (scripts/registry-local, started by
scripts/run-integration-tests; conftest.py's `registry` fixture). Faults a
registry cannot be made to show on demand (HTTP 503, TLS with basic
authentication, not listening yet) come from registry_proxy.py, a proxy in
front of it that forwards everything else.

- Events produced by confluent_kafka's registry-aware AvroSerializer with
  three versions of the event schema on one topic (v2 adds `discount` with a
  default, v3 removes `segment` and promotes `quantity` from int to long) are
  read through one reader schema; the results must equal the Python
  reference. While writer schemas cannot be fetched, partitions wait
  (nothing is skipped or dead-lettered) and everything is read once they
  can. Records not in the wire format, or with an unknown schema id, are
  dead letters. dmpflow registers its result schema (subject <topic>-value)
  and frames its results, which the standard AvroDeserializer decodes.
- A writer schema with schema references (a `Segment` record of another
  subject, which itself references a `Tier` enum of a third) is resolved.
- dmpflow started before its registry waits (not ready, consuming nothing)
  and, once the registry answers, produces complete results; one whose
  registry never answers exits 1 after registry.startup.timeout.ms.
- Decimals through an HTTPS registry with basic authentication."""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import re
import subprocess
import time

from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from reference import Measure, Window, compute
from registry_proxy import RegistryProxy
from support import (EVENT_SCHEMA_PATH, REPO, assert_matches_reference, counted_lines,
                     free_port, http_get, make_config, make_events)

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


def confluent_config(kafka, tmp_path, src, dst, registry_url, *, reader=None, http_port=0,
                     extra=(), **kw) -> str:
    text = make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=f"{src}-g", measures=MEASURES, windows=WINDOWS, commit_interval_ms=200,
        input_format="confluent",
        reader_schema=reader or REPO / "tests" / "schemas" / "evolution" / "reader_confluent.avsc",
        input_extra=[f"registry.url = {registry_url}", "registry.timeout.ms = 500",
                     "registry.pause.ms = 200", *extra], **kw)
    return text + (f"\n[http]\nport = {http_port}\n" if http_port else "")


def result_decoder(client, dst):
    """Decodes a framed result with the standard AvroDeserializer (writer
    schema by id, from the registry)."""
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(dst, MessageField.VALUE)

    def decode(value: bytes):
        rec = deserializer(value, ctx)
        return {**rec, "start": ms(rec["start"]), "end": ms(rec["end"])}
    return decode


def dead_letters(stderr: str) -> list[str]:
    m = re.search(r"dead letters: (.*)$", stderr, re.M)
    assert m, stderr[-2000:]
    return m.group(1).split()


def finish(dmpflow, proc, reader, count: int, ready_port: int = 0) -> None:
    """Reads until count results, checks dmpflow still runs (and is ready on
    ready_port), stops it (exit 0) and reads what came after."""
    reader.until(count, timeout=90)
    assert proc.poll() is None, f"dmpflow exited early with code {proc.poll()}"
    if ready_port:
        assert http_get(ready_port, "/readyz")[0] == 200
    assert dmpflow.stop(proc, timeout=10) == 0
    reader.drain(2.0)
    assert not reader.errors, reader.errors[:5]


def test_three_writer_versions_through_registry(kafka, dmpflow, registry, tmp_path):
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
    # not in the wire format; an id far beyond what the session registers
    poison = [{"user_id": events[5]["user_id"], "__raw": b"\x01not-confluent"},
              {"user_id": events[6]["user_id"], "__raw": b"\x00\x7f\xff\x00\x00\x02"}]
    produced = kafka.produce(src, events[:4000] + poison + events[4000:], PARTITIONS,
                             encode=encode)
    # three versions registered (global compatibility BACKWARD accepted each)
    assert registry.get(f"/subjects/{src}-value/versions") == [1, 2, 3]
    writer_ids = sorted({registry.version(f"{src}-value", v)["id"] for v in (1, 2, 3)})
    assert len(writer_ids) == 3
    good = [(p, k, e) for p, k, e in produced if "__raw" not in e]
    ref = compute(good, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert len(ref.results) > 100

    proxy = RegistryProxy(registry.url)
    try:
        cfg = dmpflow.write_config(confluent_config(kafka, tmp_path, src, dst, proxy.url))
        reader = kafka.reader(dst, decode=result_decoder(client, dst))

        proxy.lookups_down = True  # dmpflow can register, not fetch writer schemas
        proc = dmpflow.start("run", "-c", cfg)
        paused = re.compile(r"partition \d+ paused at offset \d+ .*: schema registry unavailable "
                            r"for schema id \d+: GET /schemas/ids/\d+: HTTP 503")
        deadline = time.monotonic() + 60  # (joining the group takes seconds on a new broker)
        while not paused.search(proc.stderr) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert paused.search(proc.stderr), proc.stderr[-2000:]
        reader.until(1, timeout=3)
        assert proc.poll() is None, f"dmpflow exited with {proc.poll()} while the registry was down"
        assert not reader.records, "results published while no writer schema could be had"
        proxy.lookups_down = False

        finish(dmpflow, proc, reader, len(ref.results))
        assert dead_letters(proc.stderr) == ["bad_magic=1", "unknown_schema=1"], proc.stderr[-2000:]
        # a pause per partition every 200 ms while the registry was down:
        # counted, not a line each (issue 22)
        direct, count = counted_lines(proc.stderr, " paused at offset ")
        print(f"registry down: {direct} pause lines written, {count} counted")
        assert direct <= 3 and count >= 1, proc.stderr[-3000:]
        # every result was framed with the registered result schema's id
        out = registry.version(f"{dst}-value")
        assert json.loads(out["schema"]) == json.loads(
            (REPO / "schemas" / "window_result.avsc").read_text())
        assert f"records to {dst} are framed with schema id {out['id']} " in proc.stderr
        assert_matches_reference(reader.records, ref)
        # each writer schema was fetched once (cached by id)
        fetched = [i for i in proxy.fetched_ids() if i != out["id"]]
        assert sorted(fetched) == writer_ids, (fetched, writer_ids)
    finally:
        proxy.close()


TIER = {"type": "enum", "name": "Tier", "namespace": "com.shared",
        "symbols": ["BRONZE", "SILVER", "GOLD"]}
SEGMENT = {"type": "record", "name": "Segment", "namespace": "com.shared", "fields": [
    {"name": "name", "type": "string"},
    {"name": "tier", "type": "Tier"},
    {"name": "weight", "type": "double"}]}


def test_schema_references(kafka, dmpflow, registry, tmp_path):
    """The writer schema uses `com.shared.Segment` (subject <src>-Segment)
    twice, the second time in a union, and `com.shared.Tier`, which Segment
    takes from a third subject: registered with Confluent references, read
    by dmpflow with the referenced types resolved recursively; the results
    equal the reference and nothing is a dead letter."""
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    tier_subject, segment_subject = f"{src}-Tier", f"{src}-Segment"
    registry.register(tier_subject, TIER)
    registry.register(segment_subject, SEGMENT,
                      [{"name": "com.shared.Tier", "subject": tier_subject, "version": 1}])
    writer = copy.deepcopy(V1)
    writer["fields"][1:1] = [{"name": "seg", "type": "com.shared.Segment"},
                             {"name": "prev", "type": ["null", "com.shared.Segment"],
                              "default": None},
                             {"name": "tier", "type": "com.shared.Tier"}]
    refs = [SchemaReference("com.shared.Segment", segment_subject, 1),
            SchemaReference("com.shared.Tier", tier_subject, 1)]
    client = SchemaRegistryClient({"url": registry.url})
    ser = AvroSerializer(client, Schema(json.dumps(writer), "AVRO", refs),
                         conf={"auto.register.schemas": True})
    ctx = SerializationContext(src, MessageField.VALUE)
    tiers = TIER["symbols"]

    def encode(ev):
        seg = {"name": ev["segment"], "tier": tiers[len(ev["user_id"]) % 3], "weight": 0.5}
        return ser({**ev, "seg": seg, "prev": seg if ev["price"] > 50 else None,
                    "tier": tiers[ev["quantity"] % 3]}, ctx)

    events = make_events(6_000, 17, keys=30, step_ms=10, ooo=0.05, max_delay_ms=3_000,
                         null_clicks=0.3)
    produced = kafka.produce(src, events, PARTITIONS, encode=encode)
    # the premise: the writer schema was registered with its references
    wid = registry.version(f"{src}-value")["id"]
    answer = registry.get(f"/schemas/ids/{wid}")
    assert [r["subject"] for r in answer["references"]] == [segment_subject, tier_subject]
    seg_field = next(f for f in json.loads(answer["schema"])["fields"] if f["name"] == "seg")
    assert seg_field["type"] == "com.shared.Segment"  # a name, defined elsewhere
    ref = compute(produced, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert len(ref.results) > 100

    cfg = dmpflow.write_config(confluent_config(kafka, tmp_path, src, dst, registry.url,
                                                log_level="debug"))
    reader = kafka.reader(dst, decode=result_decoder(client, dst))
    proc = dmpflow.start("run", "-c", cfg)
    finish(dmpflow, proc, reader, len(ref.results))
    assert dead_letters(proc.stderr) == ["none"], proc.stderr[-3000:]
    assert f"schema id {wid}: 2 reference(s) resolved" in proc.stderr, proc.stderr[-3000:]
    assert_matches_reference(reader.records, ref)


def test_startup_waits_for_registry(kafka, dmpflow, registry, tmp_path):
    """dmpflow started 15 s before its registry: it does not exit, is not
    ready, joins no consumer group and publishes nothing; once the registry
    answers it registers its result schema and publishes complete results."""
    client = SchemaRegistryClient({"url": registry.url})
    ser = AvroSerializer(client, json.dumps(V1), conf={"auto.register.schemas": True})
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    ctx = SerializationContext(src, MessageField.VALUE)
    events = make_events(6_000, 41, keys=30, step_ms=10, ooo=0.05, max_delay_ms=3_000,
                         null_clicks=0.3)
    produced = kafka.produce(src, events, PARTITIONS, encode=lambda ev: ser(ev, ctx))
    ref = compute(produced, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert len(ref.results) > 100

    proxy = RegistryProxy(registry.url, start=False)  # the registry's address: nothing listens yet
    port = free_port()
    try:
        cfg = dmpflow.write_config(confluent_config(kafka, tmp_path, src, dst, proxy.url,
                                                    reader=EVENT_SCHEMA_PATH, http_port=port))
        reader = kafka.reader(dst, decode=result_decoder(client, dst))
        proc = dmpflow.start("run", "-c", cfg)
        time.sleep(15)
        assert proc.poll() is None, f"dmpflow exited with {proc.poll()}: {proc.stderr[-2000:]}"
        assert http_get(port, "/healthz")[0] == 200
        assert http_get(port, "/readyz")[0] == 503
        reader.drain(0.5)
        assert not reader.records
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap, "log_level": 3})
        desc = admin.describe_consumer_groups([f"{src}-g"])[f"{src}-g"].result(timeout=10)
        assert not desc.members, desc  # consuming nothing: not even in the group
        assert "the schema registry does not answer" in proc.stderr, proc.stderr[-2000:]

        proxy.start()
        finish(dmpflow, proc, reader, len(ref.results), ready_port=port)
        assert dead_letters(proc.stderr) == ["none"], proc.stderr[-2000:]
        assert "the schema registry answered after" in proc.stderr
        assert_matches_reference(reader.records, ref)
    finally:
        proxy.close()


def test_startup_gives_up_after_timeout(kafka, dmpflow, registry, tmp_path):
    """A registry that answers only HTTP 503: dmpflow tries again until
    registry.startup.timeout.ms, then exits 1 saying so; it asked for no
    writer schema (consumed nothing)."""
    proxy = RegistryProxy(registry.url)
    proxy.down = True
    try:
        src, dst = kafka.topic(1, "in"), kafka.topic(1, "out")
        cfg = dmpflow.write_config(confluent_config(
            kafka, tmp_path, src, dst, proxy.url, extra=["registry.startup.timeout.ms = 3000"]))
        proc = dmpflow.run("run", "-c", cfg, timeout=60)
        assert proc.poll() == 1, proc.stderr[-2000:]
        assert ("dmpflow: the schema registry did not answer within 3 s ([input] "
                f"registry.startup.timeout.ms): cannot register the schema of {dst} as subject "
                f"{dst}-value: POST /subjects/{dst}-value/versions: HTTP 503") in proc.stderr, \
            proc.stderr[-2000:]
        posts = [p for m, p, st in proxy.requests if m == "POST"]
        assert len(posts) > 4 and set(posts) == {f"/subjects/{dst}-value/versions"}, proxy.requests
        assert all(m == "POST" for m, _, _ in proxy.requests)
    finally:
        proxy.close()


def self_signed_cert(tmp_path):
    """A certificate for 127.0.0.1 (its own CA) and its key, made with openssl."""
    cert, key = tmp_path / "registry.pem", tmp_path / "registry.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_decimal_through_tls_registry_with_basic_auth(kafka, dmpflow, registry, tmp_path):
    """Prices written as Avro decimals (bytes, scale 2) by the standard
    AvroSerializer, read by dmpflow through HTTPS (verified with [input]
    registry.ssl.ca.location) with basic authentication, in front of the
    registry. With a wrong password dmpflow cannot register its result
    schema: exit code 1 at once, the 401 in the log, no password; with the
    right one every result equals the reference computed on the decimals'
    exact values."""
    cert, key = self_signed_cert(tmp_path)
    proxy = RegistryProxy(registry.url, tls=(str(cert), str(key)), basic_auth=("dmp", "s3cret"))
    try:
        assert proxy.url.startswith("https://")
        schema = copy.deepcopy(V1)
        for f in schema["fields"]:
            if f["name"] == "price":
                f["type"] = {"type": "bytes", "logicalType": "decimal", "precision": 24,
                             "scale": 2}
        reader_path = tmp_path / "decimal_event.avsc"
        reader_path.write_text(json.dumps(schema))
        client = SchemaRegistryClient({"url": registry.url})
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
            return dmpflow.write_config(confluent_config(
                kafka, tmp_path, src, dst, proxy.url, reader=reader_path, dlq_topic=f"{src}-dlq",
                extra=[f"registry.ssl.ca.location = {cert}",
                       f"registry.basic.auth.user.info = dmp:{password}"]))

        reader = kafka.reader(dst, decode=result_decoder(client, dst))

        # wrong password: dmpflow cannot register its output schema: a clear
        # error at startup, exit code 1, nothing consumed
        proc = dmpflow.run("run", "-c", config("Wr0ngPa55"), timeout=30)
        assert proc.poll() == 1, proc.stderr[-2000:]
        assert (f"dmpflow: cannot register the schema of {dst} as subject {dst}-value: the "
                "registry answered HTTP 401: Unauthorized") in proc.stderr, proc.stderr[-2000:]
        assert "Wr0ngPa55" not in proc.stderr  # no credentials in the log

        proc = dmpflow.start("run", "-c", config("s3cret"))
        finish(dmpflow, proc, reader, len(ref.results))
        assert "0 decode errors; dead letters: none" in proc.stderr, proc.stderr[-2000:]
        assert_matches_reference(reader.records, ref)
        wid = registry.version(f"{src}-value")["id"]
        assert wid in proxy.fetched_ids()  # fetched over TLS with the credentials
    finally:
        proxy.close()
