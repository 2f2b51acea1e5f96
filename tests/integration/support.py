"""Shared helpers of the integration tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import socket
import urllib.error
import urllib.request
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import fastavro

from reference import Reference, Window

REPO = Path(__file__).resolve().parents[2]
EVENT_SCHEMA_PATH = REPO / "schemas" / "event.avsc"
RESULT_SCHEMA_PATH = REPO / "schemas" / "window_result.avsc"

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def bootstrap_servers() -> str:
    return os.environ.get("DMPFLOW_BOOTSTRAP", DEFAULT_BOOTSTRAP)


def dmpflow_path() -> Path:
    return Path(os.environ.get("DMPFLOW_BIN", str(REPO / "build" / "dmpflow")))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path; status 0 if nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:  # not listening yet
        return 0, ""


# fastavro decodes logicalType timestamp-millis to datetime; the tests want the
# raw epoch milliseconds, so strip the logical types from the parsed schemas.
def _strip_logical(schema):
    if isinstance(schema, dict):
        out = {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
        return out
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    return schema


EVENT_SCHEMA = fastavro.parse_schema(_strip_logical(json.loads(EVENT_SCHEMA_PATH.read_text())))
RESULT_SCHEMA = fastavro.parse_schema(_strip_logical(json.loads(RESULT_SCHEMA_PATH.read_text())))


def encode_event(event: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, EVENT_SCHEMA, event)
    return buf.getvalue()


def decode_event(data: bytes) -> dict[str, Any]:
    return _decode(data, EVENT_SCHEMA)


def decode_result(data: bytes) -> dict[str, Any]:
    return _decode(data, RESULT_SCHEMA)


def _decode(data: bytes, schema) -> dict[str, Any]:
    buf = io.BytesIO(data)
    rec = fastavro.schemaless_reader(buf, schema, None)
    if buf.tell() != len(data):
        raise ValueError(f"{len(data) - buf.tell()} trailing bytes after the Avro record")
    return rec


def murmur2(key: bytes) -> int:
    """Kafka's Utils.murmur2 of key, as an unsigned 32-bit int."""
    m, r = 0x5BD1E995, 24
    length = len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    i = 0
    while length - i >= 4:
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
        i += 4
    rest = length - i
    if rest == 3:
        h ^= key[i + 2] << 16
    if rest >= 2:
        h ^= key[i + 1] << 8
    if rest >= 1:
        h ^= key[i]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition of a key under Kafka's (and librdkafka's murmur2 /
    murmur2_random) default partitioner."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# Kafka's own test vectors of Utils.murmur2 (clients' UtilsTest), as signed ints.
MURMUR2_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def partition_for(key: str, partitions: int) -> int:
    """The test's own stable partitioner: crc32(key) % N."""
    return zlib.crc32(key.encode("utf-8")) % partitions


# --------------------------------------------------------------------------
# Synthetic events
# --------------------------------------------------------------------------


def make_events(
    n: int,
    seed: int,
    *,
    keys: int = 50,
    t0: int = 1_700_000_003_000,
    step_ms: int = 10,
    ooo: float = 0.10,
    max_delay_ms: int = 8_000,
    null_clicks: float = 0.30,
) -> list[dict[str, Any]]:
    """n events, time advancing step_ms per event, a fraction ooo displaced back
    by up to max_delay_ms. Keys are Zipf-distributed so that some keys are rare
    (windows with count 1, windows where every clicks value is null)."""
    rng = random.Random(seed)
    names = [f"user-{i:03d}" for i in range(keys)]
    weights = [1.0 / (i + 1) for i in range(keys)]
    chosen = rng.choices(names, weights=weights, k=n)
    events = []
    for i in range(n):
        t = t0 + i * step_ms
        if rng.random() < ooo:
            t -= rng.randint(1, max_delay_ms)
        events.append(
            {
                "user_id": chosen[i],
                "segment": f"seg-{rng.randrange(4)}",
                "ts": t,
                "price": rng.uniform(-20.0, 500.0),
                "quantity": rng.randint(0, 100),
                "clicks": None if rng.random() < null_clicks else rng.randint(0, 1000),
            }
        )
    return events


# --------------------------------------------------------------------------
# Config files
# --------------------------------------------------------------------------


def make_config(
    *,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    state_dir: Path,
    group_id: str,
    measures: Mapping[str, str],
    windows: Sequence[Window],
    commit_interval_ms: int = 1000,
    log_level: str = "info",
    schema: Path = EVENT_SCHEMA_PATH,
    idle_timeout_ms: int = 0,
    late_topic: str = "",
    emit: str = "final",
    dlq_topic: str | None = None,
    reader_schema: Path | None = None,
    input_format: str = "avro",
    input_extra: Sequence[str] = (),
    kafka_extra: Sequence[str] = (),
) -> str:
    lines = [
        "# generated by tests/integration",
        "[kafka]",
        f"bootstrap.servers = {bootstrap}",
        *kafka_extra,
        "",
        "[input]",
        f"topic = {input_topic}",
        f"group.id = {group_id}",
        f"format = {input_format}",
        f"schema = {schema}",
        *([f"reader.schema = {reader_schema}"] if reader_schema else []),
        *input_extra,
        "key.field = user_id",
        "time.field = ts",
        "auto.offset.reset = earliest",
        f"idle.timeout.ms = {idle_timeout_ms}",
        "",
        "[state]",
        f"dir = {state_dir}",
        f"commit.interval.ms = {commit_interval_ms}",
        "",
    ]
    for name, expr in measures.items():
        lines += [f"[measure {name}]", f"expr = {expr}", ""]
    for w in windows:
        lines += [f"[window {w.name}]", f"type = {w.kind}"]
        if w.kind == "session":
            lines.append(f"gap.ms = {w.gap_ms}")
        else:
            lines.append(f"size.ms = {w.size_ms}")
        if w.kind == "hopping":
            lines.append(f"advance.ms = {w.advance_ms}")
        lines.append(f"emit = {emit}")
        lines.append(f"grace.ms = {w.grace_ms}")
        lines.append(f"measures = {', '.join(w.measures)}")
        lines.append("")
    lines += ["[output]", f"topic = {output_topic}", f"late.topic = {late_topic}"]
    if dlq_topic:
        lines.append(f"dlq.topic = {dlq_topic}")
    lines += ["", "[log]", f"level = {log_level}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Comparing published results with the reference
# --------------------------------------------------------------------------

STAT_FIELDS = ("sum", "min", "max", "mean", "stddev")
RESULT_FIELDS = ("window", "kind", "key", "start", "end", "measure", "count", "late", "final") + STAT_FIELDS


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_matches_reference(records: Sequence[tuple[Any, ...]], ref: Reference, *, limit: int = 10,
                             allow_duplicates: bool = False) -> None:
    """records: (partition, offset, kafka key bytes, decoded WindowResult).
    allow_duplicates: a result may be published more than once (a partition
    read again after it moved); every copy must still equal the reference."""
    problems: list[str] = []
    by_id: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
    for part, off, kkey, rec in records:
        if not set(RESULT_FIELDS) <= set(rec):
            problems.append(f"record fields {sorted(rec)} at p{part}@{off}")
            continue
        if rec.get("final", True) is not True:  # emit = final (the default)
            problems.append(f"final={rec['final']!r} at p{part}@{off}: {rec}")
        if kkey != rec["key"].encode("utf-8"):
            problems.append(f"kafka key {kkey!r} != record key {rec['key']!r} at p{part}@{off}")
        by_id.setdefault((rec["window"], rec["key"], rec["start"], rec["measure"]), []).append(rec)

    dups = {} if allow_duplicates else {k: v for k, v in by_id.items() if len(v) > 1}
    missing = sorted(set(ref.results) - set(by_id))
    extra = sorted(set(by_id) - set(ref.results))

    mismatched = []
    for k in sorted(set(by_id) & set(ref.results)):
        exp = ref.results[k]
        for got in by_id[k]:
            bad = [f for f in ("kind", "end", "count", "late", "final") if got[f] != exp[f]]
            bad += [f for f in STAT_FIELDS if not close(got[f], exp[f])]
            if bad:
                mismatched.append((k, {f: (got[f], exp[f]) for f in bad}))

    if not (dups or missing or extra or mismatched or problems):
        return
    msg = [
        f"published {len(records)} records, {len(by_id)} distinct ids; reference has {len(ref.results)}",
        f"missing={len(missing)} extra={len(extra)} duplicated ids={len(dups)} "
        f"value mismatches={len(mismatched)} malformed={len(problems)}",
    ]
    for k in missing[:limit]:
        msg.append(f"  MISSING {k}: expected {ref.results[k]}")
    for k in extra[:limit]:
        msg.append(f"  EXTRA {k}: got {by_id[k][0]}")
    for k, v in list(dups.items())[:limit]:
        msg.append(f"  DUPLICATE x{len(v)} {k}: {v}")
    for k, diff in mismatched[:limit]:
        msg.append(f"  MISMATCH {k}: (got, expected) {diff}")
    msg += [f"  {p}" for p in problems[:limit]]
    if extra:
        c = Counter(k[0] for k in extra)
        msg.append(f"  extra per window: {dict(c)}")
    if missing:
        c = Counter(k[0] for k in missing)
        msg.append(f"  missing per window: {dict(c)}")
    raise AssertionError("\n".join(msg))


def per_partition(events: Iterable[tuple[int, str, Mapping[str, Any]]]) -> dict[int, list[Mapping[str, Any]]]:
    out: dict[int, list[Mapping[str, Any]]] = {}
    for p, _, e in events:
        out.setdefault(p, []).append(e)
    return out


# --------------------------------------------------------------------------
# Offsets
# --------------------------------------------------------------------------


def counted_lines(log: str, what: str) -> tuple[int, int]:
    """Of dmpflow's log lines mentioning what (log.h dmp_log_repeated): the
    lines written at once, and the messages only counted ("<n> more like
    this in the last 10.0 s, the first: ...")."""
    direct = count = 0
    for line in log.splitlines():
        if what not in line:
            continue
        m = re.search(r" (\d+) more like this in the last [\d.]+ s, the first: ", line)
        if m:
            count += int(m.group(1))
        else:
            direct += 1
    return direct, count


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (dmpflow commits the offsets stored with
    its state after each state commit has landed)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's log end offset."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-end-offsets", "log_level": 3})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(partitions)}
    finally:
        c.close()


# --------------------------------------------------------------------------
# A broker of the test's own (stopped and started by the test)
# --------------------------------------------------------------------------


class PrivateBroker:
    """A single-node Kafka broker of scripts/kafka-local on ports and a data
    directory of its own, for tests that stop and start the broker (never
    the session's). Its data survives stop/start (topics, offsets)."""

    def __init__(self, data_dir: Path, heap: str = "-Xms384m -Xmx384m"):
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "KAFKA_PORT": str(self.port),
                    "KAFKA_CONTROLLER_PORT": str(self.controller_port),
                    "KAFKA_DATA": str(data_dir), "KAFKA_HEAP_OPTS": heap}
        self.starts = self.stops = 0

    def _script(self, *args: str) -> None:
        import subprocess
        proc = subprocess.run([str(REPO / "scripts" / "kafka-local"), *args], env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, f"kafka-local {' '.join(args)}: {proc.stderr[-3000:]}"

    def start(self) -> None:
        self._script("start")
        self.starts += 1

    def stop(self) -> None:
        self._script("stop")
        self.stops += 1

    def wipe(self) -> None:
        self._script("stop", "--wipe")


def wait_for_log(proc, pattern: str, count: int = 1, timeout: float = 60.0) -> bool:
    """Whether proc's log matches pattern count times within timeout (False
    as soon as proc exits)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, proc.stderr)) >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def read_until_all(reader, want: set, proc, timeout: float) -> None:
    """Reads reader's records until every (window, key, start, measure) of
    want is among them, the timeout passes or proc exits."""
    import time
    deadline = time.monotonic() + timeout
    got: set = set()
    while not want <= got and time.monotonic() < deadline and proc.poll() is None:
        reader.until(len(reader.records) + 1, timeout=1.0)
        got = {(r["window"], r["key"], r["start"], r["measure"]) for _p, _o, _k, r in reader.records}


def window_closers(last: Mapping[str, Any], partitions: int, ahead_ms: int) -> list[dict[str, Any]]:
    """One event per partition, ahead_ms after last's time: they close every
    window that ends before it."""
    closers: list[dict[str, Any]] = []
    covered: set[int] = set()
    k = 0
    while len(covered) < partitions:
        e = dict(last, user_id=f"closer{k}", ts=last["ts"] + ahead_ms)
        k += 1
        if partition_for(e["user_id"], partitions) not in covered:
            covered.add(partition_for(e["user_id"], partitions))
            closers.append(e)
    return closers
