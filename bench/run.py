#!/usr/bin/env python3
"""dmpflow's end-to-end benchmark against Kafka Streams and Quix Streams.

What it does (`make bench`; `make bench-quick` is the same, smaller):

1. Makes sure a Kafka broker runs (scripts/kafka-local start, with the
   caller's KAFKA_* environment; it stops the broker at the end only if it
   started it), or uses --bootstrap.
2. Pre-loads one input topic (--partitions, default 8) with --events events
   from `build/dmpflow gen` (keyed by user_id), then one "end" event per
   partition, one day of event time after the last event. The end events
   close every window of the data in every engine, so each engine's final
   output is the complete set of (key, window) results, and its last result
   can only be published once the engine has processed its partitions to
   the end.
3. Unless --no-warmup, --warmup-passes (3) unmeasured dmpflow passes over
   the input (the broker's JIT: over 10 M events a fresh broker spent 13-15
   CPU s on each of the first two readers, 6 s on the third, 3.4-4 s on
   later ones).
   For each engine (dmpflow, kstreams, quix), with a fresh consumer group,
   fresh state and a fresh output topic (message.timestamp.type =
   LogAppendTime, so each result carries the time the broker stored it):
   starts it, waits until the output holds the expected number of results,
   and records
     wall_s      from process start to the broker's append time of the last
                 result (startup included),
     events_per_s = events / wall_s,
     cpu_s       user+system CPU of the engine's process(es) at that moment
                 (/proc/PID/stat; the whole JVM for Kafka Streams),
     rss_mb      peak RSS (VmHWM) of the process(es) (summed over Quix's
                 instances).
   The expected number of results is dmpflow's: its run (the first) ends
   when its group's committed offsets reach the end of the input and its
   output has not grown for --settle-s seconds. Without dmpflow in
   --engines each engine ends that way.
4. Startup: each engine on a tiny topic whose first window closes at once;
   startup_ms = the broker's append time of the first result minus the
   process start.
5. Latency (dmpflow): at --latency-fractions (default 50 % and 80 %) of
   dmpflow's measured events/s, `dmpflow gen --rate` feeds a topic while
   dmpflow runs 1 s windows on it; p50/p99 from the broker storing a
   window's closing event to the broker storing each of its final results
   (see measure_latency).
6. Verification: the results of --verify-keys sampled keys are read back from
   every output topic; the peers must have the same (key, window) set as
   dmpflow, equal counts and sum/min/max/mean within 1e-6 relative.
7. Writes bench/results/<name>.json and a Markdown report (bench/RESULTS.md
   for the full run, bench/results/<name>.md otherwise).

All engines compute the same thing: config/dmpflow.conf's pipeline (score =
0.7*price + 0.3*quantity, a tumbling event-time window per user_id with
count/sum/min/max/mean, one result per window when it closes, Avro
results). They commit state/offsets at the same interval
(--commit-interval-ms, dmpflow's default 1000 ms), for equal durability.
See bench/peers/*/ for the peers and how they are configured.

Run it with the bench virtualenv's Python (bench/prepare makes it), which
has confluent-kafka, fastavro and quixstreams.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from support import murmur2_partition  # noqa: E402  (Kafka's partitioner, checked against its vectors)

REPO = Path(__file__).resolve().parents[1]
EVENT_SCHEMA = REPO / "schemas" / "event.avsc"
RESULT_SCHEMA = REPO / "schemas" / "window_result.avsc"
KSTREAMS_JAR = REPO / "bench" / "peers" / "kstreams" / "target" / "kstreams-bench.jar"
QUIX_APP = REPO / "bench" / "peers" / "quix" / "window_agg.py"
GEN_START_MS = 1767225600000  # dmpflow gen's default --start-ms
END_KEY = "__bench_end__"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def strip_logical(schema):
    if isinstance(schema, dict):
        return {k: strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical(s) for s in schema]
    return schema


def load_schema(path: Path):
    return fastavro.parse_schema(strip_logical(json.loads(path.read_text())))


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def stop(procs: list[subprocess.Popen], timeout: float = 30.0) -> None:
    """SIGTERM each process, SIGKILL what is left after timeout."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} ignored SIGTERM for {timeout:.0f} s; killing it")
            p.kill()
            p.wait()


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------------------
# Broker
# ---------------------------------------------------------------------------

class Broker:
    """The broker the benchmark runs against: scripts/kafka-local's (started
    if needed, stopped at the end only if started here) or --bootstrap."""

    def __init__(self, bootstrap: str | None):
        self.started = False
        self.pid = None
        if bootstrap:
            self.bootstrap = bootstrap
            return
        script = str(REPO / "scripts" / "kafka-local")
        if subprocess.run([script, "status"], stdout=subprocess.DEVNULL).returncode != 0:
            log("starting a broker with scripts/kafka-local")
            self.started = True
        out = subprocess.run([script, "start"], check=True, stdout=subprocess.PIPE, text=True)
        self.bootstrap = out.stdout.strip().splitlines()[-1]
        pidfile = Path(os.environ.get("KAFKA_DATA", "/tmp/dmpflow-kafka")) / "kafka.pid"
        try:
            self.pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            self.pid = None

    def cpu_s(self) -> float | None:
        try:
            return proc_cpu_s(self.pid) if self.pid else None
        except OSError:
            return None

    def close(self) -> None:
        if self.started:
            log("stopping the broker this run started")
            subprocess.run([str(REPO / "scripts" / "kafka-local"), "stop"], check=False)


class Kafka:
    """Admin and watermark helpers."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.meta = Consumer({"bootstrap.servers": bootstrap, "group.id": "dmpflow-bench-meta",
                              "enable.auto.commit": False})

    def create(self, topic: str, partitions: int, config: dict | None = None) -> None:
        fs = self.admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])
        for f in fs.values():
            f.result(60)
        # Wait until the topic's metadata has all its partitions.
        for _ in range(100):
            md = self.admin.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t and not t.error and len(t.partitions) == partitions:
                return
            time.sleep(0.1)
        raise RuntimeError(f"topic {topic} not ready")

    def delete_matching(self, part: str) -> None:
        """Deletes the topics whose name contains `part` (Quix's changelog
        topics embed the group name, Kafka Streams' start with it)."""
        names = [t for t in self.admin.list_topics(timeout=10).topics if part in t]
        if names:
            for f in self.admin.delete_topics(names, operation_timeout=60).values():
                try:
                    f.result(60)
                except Exception as e:  # noqa: BLE001 - best effort cleanup
                    log(f"delete topic: {e}")

    def partitions(self, topic: str) -> list[int]:
        return sorted(self.admin.list_topics(topic, timeout=10).topics[topic].partitions)

    def end_offsets(self, topic: str, parts: list[int]) -> dict[int, int]:
        return {p: self._high(topic, p) for p in parts}

    def _high(self, topic: str, p: int) -> int:
        # Retries while a new topic's leadership reaches the client.
        for attempt in range(50):
            try:
                return self.meta.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            except KafkaException as e:
                if attempt == 49 or not e.args[0].retriable() and e.args[0].code() not in (
                        KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART,
                        KafkaError.LEADER_NOT_AVAILABLE):
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    def count(self, topic: str, parts: list[int]) -> int:
        return sum(self.end_offsets(topic, parts).values())

    def lag(self, group: str, topic: str, parts: list[int], ends: dict[int, int]) -> int:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        finally:
            c.close()
        return sum(ends[tp.partition] - max(tp.offset, 0) for tp in committed)

    def last_append_ms(self, topic: str, parts: list[int], first: bool = False) -> int | None:
        """The broker's append time (LogAppendTime) of the last (or the
        first) message of the topic."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "dmpflow-bench-read",
                      "enable.auto.commit": False, "enable.partition.eof": True})
        best = None
        try:
            ends = self.end_offsets(topic, parts)
            for p, hi in ends.items():
                if hi == 0:
                    continue
                # The last offsets may be transaction markers, which a
                # consumer never sees: read the last few, keep the last.
                c.assign([TopicPartition(topic, p, 0 if first else max(0, hi - 64))])
                m = None
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    got = c.poll(0.5)
                    if got is not None and got.error():
                        if got.error().code() == KafkaError._PARTITION_EOF:
                            break
                        continue
                    if got is not None:
                        m = got
                        if first or got.offset() >= hi - 1:
                            break
                if m is None:
                    continue
                ts = m.timestamp()[1]
                if best is None or (ts < best if first else ts > best):
                    best = ts
        finally:
            c.close()
        return best

    def count_records(self, topic: str, parts: list[int]) -> int:
        """The records a read_committed consumer sees in the topic (what
        end offsets count, less transaction markers and aborted records)."""
        ends = self.end_offsets(topic, parts)
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "dmpflow-bench-read",
                      "enable.auto.commit": False, "enable.partition.eof": True,
                      "isolation.level": "read_committed", "fetch.max.bytes": 52428800})
        c.assign([TopicPartition(topic, p, 0) for p in parts if ends[p] > 0])
        n, eof, idle = 0, 0, 0
        want = sum(1 for p in parts if ends[p] > 0)
        try:
            while eof < want and idle < 20:
                batch = c.consume(10000, 0.5)
                idle = 0 if batch else idle + 1
                for m in batch:
                    if m.error():
                        eof += m.error().code() == KafkaError._PARTITION_EOF
                    else:
                        n += 1
        finally:
            c.close()
        return n

    def read_results(self, topic: str, parts: list[int], keys: set[str] | None,
                     schema) -> dict[tuple[str, int], dict]:
        """(key, window start) -> result, for keys in `keys` (all if None)."""
        ends = self.end_offsets(topic, parts)
        total = sum(ends.values())
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "dmpflow-bench-read",
                      "enable.auto.commit": False, "fetch.max.bytes": 52428800})
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        want = {k.encode() for k in keys} if keys is not None else None
        out: dict[tuple[str, int], dict] = {}
        seen = 0
        idle = 0
        try:
            while seen < total and idle < 20:
                batch = c.consume(10000, 0.5)
                if not batch:
                    idle += 1
                    continue
                idle = 0
                for m in batch:
                    if m.error():
                        continue
                    seen += 1
                    if want is not None and m.key() not in want:
                        continue
                    r = fastavro.schemaless_reader(io.BytesIO(m.value()), schema, None)
                    r["_timestamp_ms"] = m.timestamp()[1]
                    k = (r["key"], r["start"])
                    if k in out:
                        r["duplicate"] = True
                    out[k] = r
        finally:
            c.close()
        return out


# ---------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------

class Run:
    """Everything one benchmark run shares: parameters, names, directories."""

    def __init__(self, args, kafka: Kafka, workdir: Path):
        self.args = args
        self.kafka = kafka
        self.workdir = workdir
        self.prefix = f"bench-{int(time.time())}-"
        self.commands: dict[str, str] = {}

    def topic(self, name: str) -> str:
        return self.prefix + name


ENGINES = ("dmpflow", "dmpflow-eos", "kstreams", "kstreams-eos", "quix")


def is_eos(engine: str) -> bool:
    """dmpflow-eos: [state] guarantee = exactly_once; kstreams-eos:
    processing.guarantee = exactly_once_v2."""
    return engine.endswith("-eos")


def base_engine(engine: str) -> str:
    return engine.split("-")[0]


def dmpflow_cmd(run: Run, tag: str, in_topic: str, out_topic: str, time_field: str = "ts",
                size_ms: int | None = None, grace_ms: int | None = None,
                name: str = "dmpflow", state_tag: str | None = None) -> list[str]:
    """The command of dmpflow `name` (dmpflow or dmpflow-eos): group
    <prefix><name>-<tag>, state dir of state_tag (default tag)."""
    a = run.args
    size_ms = a.size_ms if size_ms is None else size_ms
    grace_ms = a.grace_ms if grace_ms is None else grace_ms
    guarantee = "exactly_once" if is_eos(name) else "at_least_once"
    conf = run.workdir / f"{name}-{tag}.conf"
    conf.write_text(f"""# Written by bench/run.py: config/dmpflow.conf's pipeline on the bench topics.
[kafka]
bootstrap.servers = {run.kafka.bootstrap}
[input]
topic = {in_topic}
group.id = {run.prefix}{name}-{tag}
format = avro
schema = {EVENT_SCHEMA}
key.field = user_id
time.field = {time_field}
auto.offset.reset = earliest
[state]
dir = {run.workdir / f"{name}-{state_tag or tag}-state"}
commit.interval.ms = {a.commit_interval_ms}
guarantee = {guarantee}
[measure score]
expr = 0.7*price + 0.3*quantity
[window per_minute]
type = tumbling
size.ms = {size_ms}
grace.ms = {grace_ms}
measures = score
[output]
topic = {out_topic}
[log]
level = info
""")
    return [str(a.dmpflow), "run", "-c", str(conf)] + [
        x for o in a.dmpflow_set for x in ("-o", o)]


def kstreams_cmd(run: Run, tag: str, in_topic: str, out_topic: str, name: str = "kstreams",
                 size_ms: int | None = None, state_tag: str | None = None) -> list[str]:
    """The command of Kafka Streams `name` (kstreams or kstreams-eos):
    application id <prefix><name>-<tag>, state dir of state_tag (default
    tag)."""
    a = run.args
    cmd = ["java", *a.kstreams_jvm_opts.split(), "-jar", str(KSTREAMS_JAR),
           "--bootstrap", run.kafka.bootstrap, "--input", in_topic, "--output", out_topic,
           "--app-id", f"{run.prefix}{name}-{tag}",
           "--state-dir", str(run.workdir / f"{name}-{state_tag or tag}-state"),
           "--event-schema", str(EVENT_SCHEMA), "--result-schema", str(RESULT_SCHEMA),
           "--size-ms", str(a.size_ms if size_ms is None else size_ms),
           "--grace-ms", str(a.grace_ms),
           "--threads", str(a.kstreams_threads), "--emit", a.kstreams_emit,
           "--set", f"commit.interval.ms={a.commit_interval_ms}"]
    if is_eos(name):
        cmd += ["--set", "processing.guarantee=exactly_once_v2"]
    return cmd


def quix_cmd(run: Run, tag: str, in_topic: str, out_topic: str, instance: int) -> list[str]:
    a = run.args
    return [sys.executable, str(QUIX_APP), "--bootstrap", run.kafka.bootstrap,
            "--input", in_topic, "--output", out_topic, "--group", f"{run.prefix}quix-{tag}",
            "--state-dir", str(run.workdir / f"quix-{tag}-state-{instance}"),
            "--event-schema", str(EVENT_SCHEMA), "--result-schema", str(RESULT_SCHEMA),
            "--size-ms", str(a.size_ms), "--grace-ms", str(a.grace_ms),
            "--commit-interval", str(a.commit_interval_ms / 1000.0), "--agg", a.quix_agg]


def start_engine(run: Run, engine: str, tag: str, in_topic: str, out_topic: str,
                 instances: int = 1, cmd: list[str] | None = None
                 ) -> tuple[list[subprocess.Popen], float]:
    """Starts an engine (or cmd); returns its processes and the wall-clock
    start time."""
    if cmd is not None:
        cmds = [cmd]
    elif base_engine(engine) == "dmpflow":
        cmds = [dmpflow_cmd(run, tag, in_topic, out_topic, name=engine)]
    elif base_engine(engine) == "kstreams":
        cmds = [kstreams_cmd(run, tag, in_topic, out_topic, name=engine)]
    elif engine == "quix":
        cmds = [quix_cmd(run, tag, in_topic, out_topic, i) for i in range(instances)]
    else:
        raise ValueError(engine)
    if not re.fullmatch(r"startup[1-9]\d*", tag):  # repeated startup runs: listed once
        run.commands[f"{engine}-{tag}"] = " ".join(cmds[0]) + (
            f"   # x{len(cmds)} instances" if len(cmds) > 1 else "")
    t0 = time.time()
    procs = []
    for i, c in enumerate(cmds):
        with open(run.workdir / f"{engine}-{tag}-{i}.log", "w") as logf:
            procs.append(subprocess.Popen(c, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
    return procs, t0


def tail(path: Path, n: int = 15) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(True)[-n:])
    except OSError:
        return ""


def measure(run: Run, engine: str, in_topic: str, events: int, expected: int | None,
            broker: Broker, tag: str = "e2e") -> dict:
    """One end-to-end run of an engine over in_topic."""
    a = run.args
    k = run.kafka
    out_topic = run.topic(f"out-{engine}" + ("" if tag == "e2e" else f"-{tag}"))
    k.create(out_topic, a.partitions, {"message.timestamp.type": "LogAppendTime"})
    in_parts = k.partitions(in_topic)
    in_ends = k.end_offsets(in_topic, in_parts)
    out_parts = k.partitions(out_topic)
    instances = a.quix_instances if engine == "quix" else 1
    group = f"{run.prefix}{engine}-{tag}"
    load0 = loadavg()
    broker_cpu0 = broker.cpu_s()
    procs, t0 = start_engine(run, engine, tag, in_topic, out_topic, instances)
    t0_mono = time.monotonic()
    log(f"{engine}: started ({len(procs)} process(es)), waiting for "
        f"{expected if expected is not None else 'all'} results")
    res: dict = {"engine": engine, "instances": instances, "output_topic": out_topic}
    count, last_count, last_change = 0, -1, time.monotonic()
    cpu = hwm = None
    error = None
    try:
        while True:
            time.sleep(a.poll_s)
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                error = f"exited with status {dead[0].returncode}"
                break
            count = k.count(out_topic, out_parts)
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            if expected is not None and count >= expected:
                break
            if expected is None and count > 0 and now - last_change >= a.settle_s \
                    and k.lag(group, in_topic, in_parts, in_ends) == 0:
                break
            if now - last_change > a.stall_s:
                error = f"no new result for {a.stall_s:.0f} s at {count} results"
                break
            if now - t0_mono > a.timeout_s:
                error = f"timed out after {a.timeout_s:.0f} s at {count} results"
                break
        # Resource figures at completion, before stopping (shutdown excluded).
        try:
            cpu = sum(proc_cpu_s(p.pid) for p in procs)
            hwm = sum(proc_hwm_mb(p.pid) for p in procs)
        except OSError:
            pass
    finally:
        broker_cpu1 = broker.cpu_s()
        stop(procs)
    if error:
        logs = run.workdir / f"{engine}-{tag}-0.log"
        log(f"{engine}: {error}; last lines of {logs}:\n{tail(logs)}")
        res.update(error=error, results=count)
        return res
    # Did anything arrive after the target count? (duplicates, a mismatch)
    time.sleep(0.5)
    # (a transactional producer's offsets also count its commit markers)
    count = k.count_records(out_topic, out_parts) if is_eos(engine) else k.count(out_topic, out_parts)
    t_last = k.last_append_ms(out_topic, out_parts) / 1000.0
    wall = t_last - t0
    res.update(
        results=count, wall_s=round(wall, 3), events_per_s=round(events / wall),
        cpu_s=round(cpu, 2) if cpu is not None else None,
        rss_mb=round(hwm, 1) if hwm is not None else None,
        broker_cpu_s=round(broker_cpu1 - broker_cpu0, 2)
        if broker_cpu0 is not None and broker_cpu1 is not None else None,
        loadavg_before=load0, loadavg_after=loadavg(),
        changelog=changelog_size(run, f"{run.prefix}{engine}-{tag}", events))
    log(f"{engine}: {count} results in {wall:.2f} s = {events / wall:,.0f} events/s, "
        f"{res['cpu_s']} CPU s, peak RSS {res['rss_mb']} MB")
    return res


def changelog_size(run: Run, app: str, events: int) -> dict | None:
    """What an application's changelog topics (dmpflow: <group>-changelog;
    Kafka Streams: <application.id>-*-changelog) hold on the broker's disk:
    bytes (segment files, batch headers and compression included) and
    offsets (records and transaction markers), and both per input event.
    Only with scripts/kafka-local's broker (its data directory)."""
    if run.args.bootstrap:
        return None
    data = Path(os.environ.get("KAFKA_DATA", "/tmp/dmpflow-kafka")) / "kraft"
    topics = [t for t in run.kafka.admin.list_topics(timeout=10).topics
              if t.startswith(app + "-") and t.endswith("-changelog")]
    size = offsets = 0
    for t in topics:
        parts = run.kafka.partitions(t)
        offsets += sum(run.kafka.end_offsets(t, parts).values())
        for p in parts:
            size += sum(f.stat().st_size for f in (data / f"{t}-{p}").glob("*.log"))
    return {"topics": topics, "bytes": size, "offsets": offsets,
            "bytes_per_event": round(size / events, 2) if events else None,
            "offsets_per_event": round(offsets / events, 4) if events else None}


def measure_startup(run: Run, engine: str, in_topic: str, i: int = 0) -> dict:
    """Process start to the broker's append time of the first result."""
    a = run.args
    k = run.kafka
    out_topic = run.topic(f"startup{i}-out-{engine}")
    k.create(out_topic, a.partitions, {"message.timestamp.type": "LogAppendTime"})
    parts = k.partitions(out_topic)
    procs, t0 = start_engine(run, engine, f"startup{i}", in_topic, out_topic, 1)
    error = None
    try:
        while k.count(out_topic, parts) == 0:
            if procs[0].poll() is not None:
                error = f"exited with status {procs[0].returncode}"
                break
            if time.time() - t0 > 120:
                error = "no result within 120 s"
                break
            time.sleep(0.02)
    finally:
        stop(procs)
    if error:
        log(f"{engine} startup: {error}:\n{tail(run.workdir / f'{engine}-startup{i}-0.log')}")
        return {"error": error}
    first = k.last_append_ms(out_topic, parts, first=True) / 1000.0
    ms = (first - t0) * 1000.0
    log(f"{engine}: first result {ms:.0f} ms after process start")
    return {"startup_ms": round(ms, 1)}


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------

def encode_event(schema, **ev) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, ev)
    return buf.getvalue()


def preload(run: Run, topic: str, events: int, keys: int, step_ms: int, ooo: float,
            end_events: bool = True, gen_args: tuple[str, ...] = ()) -> None:
    """`dmpflow gen` events, then one end event per partition one day of
    event time later (it closes every window of the data)."""
    a = run.args
    run.kafka.create(topic, a.partitions)
    cmd = [str(a.dmpflow), "gen", "-b", run.kafka.bootstrap, "-t", topic, "-n", str(events),
           "--keys", str(keys), "--step-ms", str(step_ms), "--ooo", str(ooo),
           "--max-delay-ms", str(min(a.grace_ms, 5000)), "--seed", str(a.seed), *gen_args]
    run.commands[f"gen-{topic[len(run.prefix):]}"] = " ".join(cmd)
    log(f"pre-loading {topic}: {events:,} events")
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    if not end_events:
        return
    schema = load_schema(EVENT_SCHEMA)
    end_ts = GEN_START_MS + events * step_ms + 86_400_000
    p = Producer({"bootstrap.servers": run.kafka.bootstrap})
    for part in run.kafka.partitions(topic):
        v = encode_event(schema, user_id=END_KEY, segment="seg_end", ts=end_ts, price=0.0,
                         quantity=0, clicks=None)
        p.produce(topic, v, key=END_KEY, partition=part)
    if p.flush(30) != 0:
        raise RuntimeError("end events not acknowledged")


# ---------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------

LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")


def log_time(line: str) -> float | None:
    """Epoch seconds of a dmpflow text log line's UTC timestamp."""
    m = LOG_TS.match(line)
    if not m:
        return None
    import datetime
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def restore_progress(engine: str, text: str) -> tuple[int, int, float | None, float | None, bool]:
    """From an engine's log: (store partitions restored, records restored,
    first restore's start, last restore's end (epoch s), running)."""
    done = records = 0
    t0 = t1 = None
    if base_engine(engine) == "dmpflow":
        for line in text.splitlines():
            t = log_time(line)
            if "restoring its state from" in line and t is not None:
                t0 = t if t0 is None else min(t0, t)
            m = re.search(r"restored (\d+) changelog records", line)
            if m:
                done += 1
                records += int(m.group(1))
                t1 = t if t1 is None or (t is not None and t > t1) else t1
        return done, records, t0, t1, done > 0
    for m in re.finditer(r"kstreams-bench: restored \S+ \[\d+\] (\d+) records from (\d+) to (\d+)",
                         text):
        done += 1
        records += int(m.group(1))
        a, b = int(m.group(2)) / 1000.0, int(m.group(3)) / 1000.0
        t0 = a if t0 is None else min(t0, a)
        t1 = b if t1 is None else max(t1, b)
    return done, records, t0, t1, "kstreams-bench: state RUNNING" in text


def measure_restore(run: Run, engine: str, in_topic: str, keys: int) -> dict:
    """Builds a state of `keys` entries (one open window per key: every key
    once, windows of 10 days), stops, then starts the same application with
    an empty state directory: it restores everything from its changelog.
    Restore time: the first partition's restore start to the last one's end
    (the engines' own logs)."""
    a = run.args
    k = run.kafka
    out_topic = run.topic(f"restore-out-{engine}")
    k.create(out_topic, a.partitions)
    parts = k.partitions(in_topic)
    ends = k.end_offsets(in_topic, parts)
    size_ms = 10 * 86_400_000

    def cmd(state_tag: str) -> list[str]:
        if base_engine(engine) == "dmpflow":
            return dmpflow_cmd(run, "restore", in_topic, out_topic, size_ms=size_ms,
                               name=engine, state_tag=state_tag)
        return kstreams_cmd(run, "restore", in_topic, out_topic, name=engine, size_ms=size_ms,
                            state_tag=state_tag)

    res: dict = {"engine": engine, "keys": keys}
    procs, _ = start_engine(run, engine, "restore-build", in_topic, out_topic, cmd=cmd("a"))
    group = f"{run.prefix}{engine}-restore"
    deadline = time.monotonic() + a.timeout_s
    try:
        while k.lag(group, in_topic, parts, ends) > 0:
            if procs[0].poll() is not None or time.monotonic() > deadline:
                res["error"] = "the state was not built (exited or timed out)"
                return res
            time.sleep(1.0)
        time.sleep(2 * a.commit_interval_ms / 1000.0 + 1.0)  # changelog flushed, committed
    finally:
        stop(procs)
    log(f"{engine}: built a state of {keys:,} keys; restoring it into an empty state dir")
    procs, t_start = start_engine(run, engine, "restore", in_topic, out_topic, cmd=cmd("b"))
    logf = run.workdir / f"{engine}-restore-0.log"
    last_change, last = time.monotonic(), None
    try:
        while True:
            time.sleep(0.2)
            if procs[0].poll() is not None:
                res["error"] = f"exited with status {procs[0].returncode}"
                break
            prog = restore_progress(engine, logf.read_text(errors="replace"))
            if prog != last:
                last, last_change = prog, time.monotonic()
            done, records, t0, t1, running = prog
            if running and done >= len(parts) and time.monotonic() - last_change > 3.0:
                break
            if time.monotonic() - last_change > a.stall_s:
                res["error"] = f"no restore progress for {a.stall_s:.0f} s"
                break
        cpu = proc_cpu_s(procs[0].pid) if procs[0].poll() is None else None
    finally:
        stop(procs)
    if res.get("error"):
        log(f"{engine} restore: {res['error']}:\n{tail(logf)}")
        return res
    done, records, t0, t1, _ = last
    secs = max(t1 - t0, 1e-3)
    res.update(store_partitions=done, records=records, seconds=round(secs, 3),
               records_per_s=round(records / secs), ready_s=round(t1 - t_start, 3),
               cpu_s=round(cpu, 2) if cpu is not None else None)
    log(f"{engine}: restored {records:,} records ({done} store partitions) in {secs:.2f} s "
        f"= {records / secs:,.0f} records/s; {t1 - t_start:.2f} s from process start")
    return res


# ---------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    i = max(0, math.ceil(q / 100.0 * len(sorted_values)) - 1)
    return sorted_values[i]


def wait_for_log(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if text in path.read_text(errors="replace"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def measure_latency(run: Run, rate: int, seconds: float) -> dict:
    """dmpflow at a fixed input rate: latency from the window-closing event
    to each final result.

    Event time here is the input message's timestamp, and the input topic
    uses LogAppendTime: an event's time is the moment the broker stored it.
    A window [s, e) of a partition closes with the first event of that
    partition whose time is >= e + grace; its broker time T is found with
    offsets_for_times. latency = (broker time of the result) - T: the time
    dmpflow adds between an event being available and the result it
    triggers being stored, consumer fetch and producer linger included; the
    generator's own batching (linger.ms=20) before the broker is excluded.
    dmpflow emits final results only, so this is the latency of final
    results, not of updates."""
    a = run.args
    k = run.kafka
    tag = f"lat{rate}"
    in_topic, out_topic = run.topic(f"{tag}-in"), run.topic(f"{tag}-out")
    k.create(in_topic, a.partitions, {"message.timestamp.type": "LogAppendTime"})
    k.create(out_topic, a.partitions, {"message.timestamp.type": "LogAppendTime"})
    size, grace = a.latency_window_ms, 0
    cmd = dmpflow_cmd(run, tag, in_topic, out_topic, time_field="", size_ms=size,
                      grace_ms=grace)
    procs, _ = start_engine(run, "dmpflow", tag, in_topic, out_topic, cmd=cmd)
    logf = run.workdir / f"dmpflow-{tag}-0.log"
    n = int(rate * seconds)
    gen = [str(a.dmpflow), "gen", "-b", k.bootstrap, "-t", in_topic, "-n", str(n),
           "--rate", str(rate), "--keys", str(a.keys), "--seed", str(a.seed)]
    run.commands[f"latency-{rate}-gen"] = " ".join(gen)
    try:
        if not wait_for_log(logf, "assigned", procs[0], 60):
            return {"rate": rate, "error": "dmpflow got no partitions within 60 s:\n" + tail(logf)}
        log(f"latency: {n:,} events at {rate:,}/s")
        g = subprocess.run(gen, stdout=subprocess.PIPE, text=True)
        if g.returncode != 0:
            return {"rate": rate, "error": f"dmpflow gen failed with status {g.returncode}"}
        out = g.stdout
        achieved = float(out.split("(")[-1].split()[0]) if "(" in out else None
        parts = k.partitions(out_topic)
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 2.0:
            c = k.count(out_topic, parts)
            if c != last:
                last, stable_since = c, time.monotonic()
            time.sleep(0.2)
    finally:
        stop(procs)
    results = k.read_results(out_topic, k.partitions(out_topic), None, load_schema(RESULT_SCHEMA))
    if not results:
        return {"rate": rate, "error": "no results"}
    # The closing event of each (input partition, window end).
    in_parts = len(k.partitions(in_topic))
    closing: dict[tuple[int, int], int | None] = {}
    c = Consumer({"bootstrap.servers": k.bootstrap, "group.id": "dmpflow-bench-read",
                  "enable.auto.commit": False})
    try:
        for key, start in results:
            p = murmur2_partition(key.encode(), in_parts)
            closing.setdefault((p, start + size), None)
        for (p, end) in sorted(closing):
            tp = c.offsets_for_times([TopicPartition(in_topic, p, end + grace)], timeout=10)[0]
            if tp.offset < 0:
                continue
            c.assign([TopicPartition(in_topic, p, tp.offset)])
            m = None
            for _ in range(20):
                m = c.poll(0.5)
                if m is not None and not m.error():
                    break
            if m is None or m.error():
                continue
            if m.timestamp()[1] < end + grace or m.key() is None:
                raise RuntimeError("offsets_for_times returned an event before the window end")
            # Self-check of murmur2_partition: the closing event's own key.
            if murmur2_partition(m.key(), in_parts) != p:
                raise RuntimeError("murmur2_partition disagrees with the producer's partitioner")
            closing[(p, end)] = m.timestamp()[1]
    finally:
        c.close()
    by_close: dict[tuple[int, int], list[int]] = {}
    for (key, start), r in results.items():
        pe = (murmur2_partition(key.encode(), in_parts), start + size)
        if closing.get(pe):
            by_close.setdefault(pe, []).append(r["_timestamp_ms"] - closing[pe])
    lat = sorted(x for v in by_close.values() for x in v)
    # Per window close (input partition, window end): the closing event's
    # broker time and the spread of its results' latencies, for analysis.
    (run.workdir / f"latency-{rate}.json").write_text(json.dumps(
        [{"partition": p, "end": e, "closing_ms": closing[(p, e)], "results": len(v),
          "min_ms": min(v), "max_ms": max(v)} for (p, e), v in sorted(by_close.items())]))
    res = {"rate": rate, "achieved_rate": achieved, "events": n, "window_ms": size,
           "grace_ms": grace, "results": len(lat), "window_closes": len(closing),
           "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": lat[-1]}
    # Steady state: without the first window end's results. The first close
    # after start carried the whole tail in every run looked at (one window
    # of 10-15 with 85-130 ms, all later ones <= 30 ms; latency-<rate>.json).
    first_end = min(e for _p, e in by_close)
    steady = sorted(x for (_p, e), v in by_close.items() if e != first_end for x in v)
    if steady:
        res.update(steady_p50_ms=percentile(steady, 50), steady_p99_ms=percentile(steady, 99),
                   steady_max_ms=steady[-1])
    log(f"latency at {rate:,}/s: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
        f"max {res['max_ms']} ms over {len(lat):,} results; after the first window: "
        f"p99 {res.get('steady_p99_ms')} ms, max {res.get('steady_max_ms')} ms")
    return res


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------

def close(a: float, b: float, rel: float = 1e-6) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def verify(run: Run, ref_topic: str, peers: dict[str, str]) -> dict:
    """Compares the peers' results for sampled keys with dmpflow's."""
    a = run.args
    k = run.kafka
    schema = load_schema(RESULT_SCHEMA)
    rng = random.Random(a.seed)
    keys = {f"user_{i}" for i in rng.sample(range(a.keys), min(a.verify_keys, a.keys))}
    ref = k.read_results(ref_topic, k.partitions(ref_topic), keys, schema)
    out = {"keys_sampled": len(keys), "reference_results": len(ref)}
    for engine, topic in peers.items():
        got = k.read_results(topic, k.partitions(topic), keys, schema)
        missing = sorted(set(ref) - set(got))
        extra = sorted(set(got) - set(ref))
        bad = []
        for key in set(ref) & set(got):
            r, g = ref[key], got[key]
            if r["count"] != g["count"] or not all(
                    close(r[f], g[f]) for f in ("sum", "min", "max", "mean")):
                bad.append(key)
        dups = sum(1 for g in got.values() if g.get("duplicate"))
        ok = not missing and not extra and not bad and not dups and len(ref) > 0
        out[engine] = {"compared": len(set(ref) & set(got)), "missing": len(missing),
                       "extra": len(extra), "different": len(bad), "duplicates": dups,
                       "agree": ok}
        if bad:
            kk = bad[0]
            out[engine]["example"] = {"dmpflow": ref[kk], engine: got[kk]}
        log(f"verify {engine}: {out[engine]}")
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    free = subprocess.run(["free", "-m"], stdout=subprocess.PIPE, text=True).stdout
    return {"cpu": model, "nproc": os.cpu_count(), "kernel": platform.release(),
            "free_m": free.strip(), "loadavg": loadavg(),
            "java": subprocess.run(["java", "-version"], stderr=subprocess.PIPE,
                                   text=True).stderr.splitlines()[0],
            "python": platform.python_version()}


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def summary(engines: dict, startup: dict, verification: dict | None,
            latency: list[dict], restore: dict | None = None) -> dict:
    def get(e, f):
        return engines.get(e, {}).get(f)

    def changelog(e, f):
        return (engines.get(e, {}).get("changelog") or {}).get(f)

    def rest(e, f):
        return (restore or {}).get(e, {}).get(f)
    eos, alos = get("dmpflow-eos", "events_per_s"), get("dmpflow", "events_per_s")
    s = {
        "eos_events_per_s": eos,
        "kstreams_eos_events_per_s": get("kstreams-eos", "events_per_s"),
        "ratio_eos_vs_kstreams_eos": ratio(eos, get("kstreams-eos", "events_per_s")),
        "eos_cost_pct": round(100.0 * (1 - eos / alos), 1) if eos and alos else None,
        "eos_cpu_s": get("dmpflow-eos", "cpu_s"),
        "kstreams_eos_cpu_s": get("kstreams-eos", "cpu_s"),
        "changelog_bytes_per_event": changelog("dmpflow", "bytes_per_event"),
        "kstreams_changelog_bytes_per_event": changelog("kstreams", "bytes_per_event"),
        "restore_records_per_s": rest("dmpflow", "records_per_s"),
        "restore_s": rest("dmpflow", "seconds"),
        "kstreams_restore_records_per_s": rest("kstreams", "records_per_s"),
        "kstreams_restore_s": rest("kstreams", "seconds"),
        "e2e_events_per_s": get("dmpflow", "events_per_s"),
        "kstreams_events_per_s": get("kstreams", "events_per_s"),
        "quix_events_per_s": get("quix", "events_per_s"),
        "ratio_vs_kstreams": ratio(get("dmpflow", "events_per_s"), get("kstreams", "events_per_s")),
        "ratio_vs_quix": ratio(get("dmpflow", "events_per_s"), get("quix", "events_per_s")),
        "rss_mb": get("dmpflow", "rss_mb"),
        "kstreams_rss_mb": get("kstreams", "rss_mb"),
        "quix_rss_mb": get("quix", "rss_mb"),
        "cpu_s": get("dmpflow", "cpu_s"),
        "kstreams_cpu_s": get("kstreams", "cpu_s"),
        "quix_cpu_s": get("quix", "cpu_s"),
        "startup_ms": startup.get("dmpflow", {}).get("startup_ms"),
        "kstreams_startup_ms": startup.get("kstreams", {}).get("startup_ms"),
        "quix_startup_ms": startup.get("quix", {}).get("startup_ms"),
        "p99_latency_ms": None,
        "p50_latency_ms": None,
        "core_ns_per_event": None,
        "decode_ns_compiled": None,
        "decode_ns_avro_generic": None,
        "nexmark_q5_events_per_s": None,
        "nexmark_q7_events_per_s": None,
    }
    # the in-process figures of `make bench-windows` / `bench-decode`, which
    # make bench runs before this, and bench/nexmark.py's of its last run
    # (make bench runs it after this; it then updates latest.json and the
    # report)
    res = REPO / "bench" / "results"
    try:
        for line in (res / "windows.json").read_text().splitlines():
            row = json.loads(line)
            if row.get("pipeline") == "core" and row.get("keys") == 1000:
                s["core_ns_per_event"] = row["core_ns_per_event"]
                s["core_keys"] = row["keys"]
    except (OSError, ValueError):
        pass
    try:
        dec = json.loads((res / "decode.json").read_text())
        s["decode_ns_compiled"] = dec["decode_ns_compiled"]
        s["decode_ns_avro_generic"] = dec["decode_ns_avro_generic"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        for r in json.loads((res / "nexmark.json").read_text())["results"]:
            s[f"nexmark_{r['query']}_events_per_s"] = r["events_per_s"]
    except (OSError, ValueError, KeyError):
        pass
    ok = [r for r in latency if "p99_ms" in r]
    if ok:  # at the highest measured rate
        top = max(ok, key=lambda r: r["rate"])
        s["p99_latency_ms"], s["p50_latency_ms"] = top["p99_ms"], top["p50_ms"]
        s["p99_latency_steady_ms"] = top.get("steady_p99_ms")
        s["latency_rate"] = top["rate"]
    if verification is not None:
        s["peers_agree"] = all(v.get("agree") for k, v in verification.items()
                               if isinstance(v, dict))
    return s


NOT_MEASURED = {
    "restore_records_per_s": "the restore runs were skipped (--restore-keys 0) or failed "
                             "(details.restore)",
    "changelog_bytes_per_event": "needs scripts/kafka-local's broker (its data directory)",
    "p99_latency_ms": "the latency runs were skipped or failed (see details.latency)",
    "core_ns_per_event": "comes from `make bench-windows` (bench/results/windows.json), "
                         "run by `make bench` before this",
    "decode_ns_compiled": "comes from `make bench-decode` (bench/results/decode.json)",
    "decode_ns_avro_generic": "comes from `make bench-decode` (bench/results/decode.json)",
    "nexmark_q5_events_per_s": "comes from `make bench-nexmark` (bench/results/nexmark.json), "
                               "run by `make bench` after this",
    "nexmark_q7_events_per_s": "comes from `make bench-nexmark` (bench/results/nexmark.json)",
}


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def markdown(result: dict) -> str:
    s, p, m = result["summary"], result["params"], result["machine"]
    e = result["engines"]
    st = result["startup"]
    lines = [
        "# dmpflow benchmark results",
        "",
        f"Written by `{result['command']}` (bench/run.py) on {result['date']}.",
        "",
    ]
    if result.get("caveat"):
        lines += [f"**Caveat:** {result['caveat']}", ""]
    lines += [
        "## The work",
        "",
        f"{p['events']:,} events (`dmpflow gen`, {p['keys']:,} keys, one event per "
        f"{p['step_ms']} ms of event time, {p['ooo'] * 100:g} % out of order by up to "
        f"{min(p['grace_ms'], 5000)} ms) in one topic of {p['partitions']} partitions, plus one "
        "end event per partition that closes every window. Each engine: score = "
        "0.7*price + 0.3*quantity per event, tumbling event-time windows of "
        f"{p['size_ms']} ms (grace {p['grace_ms']} ms) per user_id with "
        "count/sum/min/max/mean, one Avro result per (key, window) when the window "
        f"closes; state and offsets committed every {p['commit_interval_ms']} ms. "
        "Time: process start to the broker's append time of the last result "
        "(startup included)."
        + (f" Before the measured runs, {len(result['warmup'])} unmeasured dmpflow "
           "passes over the input warm the broker's JIT (broker CPU s per pass: "
           + ", ".join(f"{w.get('broker_cpu_s', '?')}" for w in result["warmup"])
           + "), so that every measured engine reads from a warm broker."
           if result.get("warmup") else ""),
        "",
        "| engine | setup | results | wall s | events/s | CPU s | peak RSS MB | broker CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ks_setup = (f"{p['kstreams_threads']} stream threads, emit {p['kstreams_emit']}, "
                + (f"JVM {p['kstreams_jvm_opts']}" if p["kstreams_jvm_opts"]
                   else "JVM defaults (max heap 1/4 of RAM)"))
    setups = {
        "dmpflow": "one processing thread, at_least_once (changelog on)",
        "dmpflow-eos": "one processing thread, exactly_once",
        "kstreams": ks_setup + ", at_least_once",
        "kstreams-eos": ks_setup + ", exactly_once_v2",
        "quix": f"{p['quix_instances']} instance(s), {p['quix_agg']} aggregators",
    }
    for name in ENGINES:
        if name not in e:
            continue
        r = e[name]
        if r.get("error"):
            lines.append(f"| {name} | {setups[name]} | {fmt(r.get('results'))} | "
                         f"failed: {r['error']} | | | | |")
            continue
        lines.append(f"| {name} | {setups[name]} | {fmt(r['results'])} | {r['wall_s']} | "
                     f"{fmt(r['events_per_s'])} | {fmt(r['cpu_s'])} | {fmt(r['rss_mb'])} | "
                     f"{fmt(r.get('broker_cpu_s'))} |")
    lines += [
        "",
        f"dmpflow / Kafka Streams: **{fmt(s['ratio_vs_kstreams'])}×** events/s; "
        f"dmpflow / Quix Streams: **{fmt(s['ratio_vs_quix'])}×** events/s.",
        "",
        f"Exactly-once: dmpflow / Kafka Streams (exactly_once_v2): "
        f"**{fmt(s['ratio_eos_vs_kstreams_eos'])}×** events/s; dmpflow's exactly_once "
        f"costs {fmt(s['eos_cost_pct'])} % of its at_least_once events/s. A "
        "read_committed reader counts the exactly-once results (their offsets also "
        "count transaction markers).",
        "",
        "## Startup (process start to first result published)",
        "",
        "A topic of 100 events of one key, one per second of event time: the first "
        "window closes at the 66th event. Median of the runs.",
        "",
        "| engine | median ms | runs ms |",
        "|---|---:|---|",
    ]
    for name, r in st.items():
        runs = ", ".join(f"{x:,.0f}" for x in r.get("runs_ms", []))
        lines.append(f"| {name} | {fmt(r.get('startup_ms')) if 'error' not in r else r['error']}"
                     f" | {runs} |")
    cl = [(name, e[name]["changelog"]) for name in ENGINES
          if name in e and (e[name].get("changelog") or None)]
    if cl:
        lines += ["", "## Changelog written", "",
                  "What each engine's changelog topics hold on the broker's disk after "
                  "the run (segment files: record batches with their headers, "
                  "compression as the engine's producer sets it; offsets count records "
                  "and transaction markers).", "",
                  "| engine | topics | bytes | bytes/event | offsets | offsets/event |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, c in cl:
            lines.append(f"| {name} | {len(c['topics'])} | {fmt(c['bytes'])} | "
                         f"{c['bytes_per_event']} | {fmt(c['offsets'])} | "
                         f"{c['offsets_per_event']} |")
    rs = result.get("restore") or {}
    if rs:
        lines += ["", "## Restore from the changelog", "",
                  f"A state of {p['restore_keys']:,} keys (every key once, one open "
                  "10-day window each), built by one run that then stops; the same "
                  "application then starts with an empty state directory and restores it "
                  "from its changelog. Seconds: the first partition's restore start to the "
                  "last one's end (each engine's own log); records: what it replayed "
                  "(Kafka Streams: its window store's and its suppression buffer's "
                  "changelogs).", "",
                  "| engine | store partitions | records | seconds | records/s | "
                  "ready after start s | CPU s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in rs.items():
            if r.get("error"):
                lines.append(f"| {name} | failed: {r['error']} | | | | | |")
            else:
                lines.append(f"| {name} | {r['store_partitions']} | {fmt(r['records'])} | "
                             f"{r['seconds']} | {fmt(r['records_per_s'])} | {r['ready_s']} | "
                             f"{fmt(r.get('cpu_s'))} |")
    lat = result.get("latency") or []
    if lat:
        lines += ["", "## Latency (dmpflow, final results)", "",
                  "The harness runs dmpflow with emit = final, so this is the "
                  "latency of a window's final results: from the broker storing the event "
                  "that closes the window (input topic with LogAppendTime, event time = that "
                  "timestamp) to the broker storing each result of the window "
                  f"({lat[0].get('window_ms', '?')} ms tumbling windows, grace 0, "
                  f"{p['keys']:,} keys, {p['latency_seconds']:g} s per rate). The "
                  "generator's own batching (linger.ms=20) is before the broker and not "
                  "counted. Generator, broker and dmpflow share the machine. \"after the "
                  "first window\" leaves out the results of the first window end after start "
                  "(warm-up: it carried the whole tail in every run looked at; per window "
                  "figures in the work dir's latency-<rate>.json).", "",
                  "| rate (events/s) | of peak | achieved | results | p50 ms | p99 ms | max ms "
                  "| p99 ms after the first window | max ms after it |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in lat:
            if "error" in r:
                lines.append(f"| {fmt(r.get('rate'))} | | failed: {r['error'][:80]} | | | | | | |")
            else:
                lines.append(f"| {fmt(r['rate'])} | {r['fraction_of_peak']:.0%} | "
                             f"{fmt(r['achieved_rate'])} | {fmt(r['results'])} | {r['p50_ms']} | "
                             f"{r['p99_ms']} | {r['max_ms']} | {r.get('steady_p99_ms', '')} | "
                             f"{r.get('steady_max_ms', '')} |")
    v = result.get("verification")
    if v:
        lines += ["", "## Equal work", "",
                  f"Results of {v['keys_sampled']} sampled keys ({v['reference_results']:,} "
                  "(key, window) results of dmpflow) compared: same windows, equal counts, "
                  "sum/min/max/mean within 1e-6 relative.", ""]
        for name in ENGINES:
            if name in v:
                r = v[name]
                lines.append(f"- {name}: {'agrees' if r['agree'] else 'DISAGREES'} "
                             f"({r['compared']:,} compared, {r['missing']} missing, "
                             f"{r['extra']} extra, {r['different']} different, "
                             f"{r['duplicates']} duplicates)")
    if result.get("notes"):
        lines += ["", "## Notes", "", result["notes"].strip()]
    if s.get("core_ns_per_event") is not None or s.get("decode_ns_compiled") is not None:
        lines += ["", "## In process (no broker)", "",
                  "From `make bench-windows` (bench/results/windows.json) and `make "
                  "bench-decode` (bench/results/decode.json), run just before.", "",
                  "| figure | value |", "|---|---:|",
                  f"| core pipeline ns/event ({s.get('core_keys', '?')} keys: decode, measure, "
                  f"tumbling window, group, topk and anomaly miners, commits) | "
                  f"{fmt(s.get('core_ns_per_event'))} |",
                  f"| decode ns/event, compiled plan | {fmt(s.get('decode_ns_compiled'))} |",
                  f"| decode ns/event, Avro C generic reader | "
                  f"{fmt(s.get('decode_ns_avro_generic'))} |"]
    lines += ["", "## Not measured", ""]
    for key, why in result["not_measured"].items():
        lines.append(f"- `{key}`: {why}")
    lines += ["", "## Reproduce", "", "```sh", result["command"], "```", "",
              "which ran `bench/run.py " + shlex.join(result["argv"]) + "`.", "",
              "Commands the harness ran (paths of this run):", "", "```sh"]
    for name, c in result["commands"].items():
        lines += [f"# {name}", c.replace(str(REPO) + "/", "")]
    lines += ["```", "", "## Machine", "", f"- CPU: {m['cpu']}", f"- nproc: {m['nproc']}",
              f"- kernel: {m['kernel']}", f"- {m['java']}; Python {m['python']}",
              f"- load average at start: {m['loadavg']}", "", "```", m["free_m"], "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="dmpflow vs Kafka Streams vs Quix Streams, "
                                 "end to end on a real broker")
    ap.add_argument("--name", default="latest", help="results go to bench/results/NAME.json")
    ap.add_argument("--report", help="Markdown report path (default: bench/RESULTS.md for "
                    "--name latest, else bench/results/NAME.md)")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="of " + ", ".join(ENGINES) + " (-eos: exactly-once)")
    ap.add_argument("--bootstrap", help="use this broker instead of scripts/kafka-local's")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--step-ms", type=int, default=1, help="event time between events")
    ap.add_argument("--ooo", type=float, default=0.01, help="fraction out of order")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size-ms", type=int, default=60000)
    ap.add_argument("--grace-ms", type=int, default=5000)
    ap.add_argument("--commit-interval-ms", type=int, default=1000)
    ap.add_argument("--kstreams-threads", type=int, default=os.cpu_count())
    ap.add_argument("--kstreams-emit", choices=("suppress", "on-window-close"),
                    default="suppress")
    ap.add_argument("--kstreams-jvm-opts", default="", help="e.g. -Xmx2g")
    ap.add_argument("--dmpflow-set", action="append", default=[], metavar="SECTION.NAME=VALUE",
                    help="a dmpflow -o override, e.g. kafka.fetch.wait.max.ms=100 (repeatable)")
    ap.add_argument("--quix-instances", type=int, default=os.cpu_count())
    ap.add_argument("--quix-agg", choices=("builtin", "reduce"), default="builtin")
    ap.add_argument("--no-startup", action="store_true", help="skip the startup runs")
    ap.add_argument("--restore-keys", type=int, default=1_000_000,
                    help="state entries of the restore runs (0: skip them)")
    ap.add_argument("--startup-runs", type=int, default=5,
                    help="startup runs per engine; the median is reported")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency runs")
    ap.add_argument("--no-warmup", action="store_true",
                    help="no unmeasured pass over the input (as --warmup-passes 0)")
    ap.add_argument("--warmup-passes", type=int, default=3,
                    help="unmeasured dmpflow passes over the input that warm the broker")
    ap.add_argument("--latency-fractions", default="0.5,0.8",
                    help="input rates of the latency runs, as fractions of the peak")
    ap.add_argument("--latency-peak", type=int,
                    help="peak events/s for the latency rates (default: dmpflow's e2e figure)")
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--latency-window-ms", type=int, default=1000)
    ap.add_argument("--verify-keys", type=int, default=500)
    ap.add_argument("--poll-s", type=float, default=0.2)
    ap.add_argument("--settle-s", type=float, default=3.0)
    ap.add_argument("--stall-s", type=float, default=180.0)
    ap.add_argument("--timeout-s", type=float, default=3600.0)
    ap.add_argument("--caveat", default="", help="a note printed at the top of the report")
    ap.add_argument("--notes", type=Path, help="a Markdown file added to the report as its "
                    "Notes section (observations of the person running it)")
    ap.add_argument("--keep", action="store_true", help="keep topics and the work dir")
    ap.add_argument("--dmpflow", type=Path, default=REPO / "build" / "dmpflow")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"bench: unknown engine {e}")
    if any(base_engine(e) == "kstreams" for e in engines) and not KSTREAMS_JAR.exists():
        sys.exit(f"bench: {KSTREAMS_JAR} missing (run bench/prepare)")
    command = "python bench/run.py " + " ".join(sys.argv[1:]) if argv is None else "bench/run.py"
    command = os.environ.get("BENCH_COMMAND", command)

    broker = Broker(args.bootstrap)
    kafka = Kafka(broker.bootstrap)
    workdir = Path(tempfile.mkdtemp(prefix="dmpflow-bench-"))
    run = Run(args, kafka, workdir)
    log(f"broker {broker.bootstrap}, work dir {workdir}, topics {run.prefix}*")
    result = {"command": command, "argv": sys.argv[1:] if argv is None else argv, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "caveat": args.caveat, "machine": machine(),
              "notes": args.notes.read_text() if args.notes else "",
              "params": {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(args).items()}}
    try:
        startup = {}
        if not args.no_startup:
            # 100 events of one key, one per second of event time: the first
            # window closes at the 66th event.
            st_topic = run.topic("startup-in")
            preload(run, st_topic, 100, 1, 1000, 0.0, end_events=False)
            for e in engines:
                runs = [measure_startup(run, e, st_topic, i) for i in range(args.startup_runs)]
                ms = sorted(r["startup_ms"] for r in runs if "startup_ms" in r)
                startup[e] = ({"startup_ms": ms[(len(ms) - 1) // 2], "runs_ms": ms}
                              if ms else runs[-1])

        in_topic = run.topic("in")
        preload(run, in_topic, args.events, args.keys, args.step_ms, args.ooo)
        warmup = []
        if not args.no_warmup:
            # The broker is a JVM: on a fresh one, the first engines to read
            # the topic paid for its JIT warm-up. Measured over 10 M events
            # (2026-12-01, broker CPU s per dmpflow pass): 14.7, 13.2, 6.1,
            # then 3.4-4.1. One warm-up pass left the measured dmpflow run,
            # which comes first, paying 6 s the peers after it did not.
            # Unmeasured passes first, so that every measured engine reads
            # from a warm broker.
            for i in range(args.warmup_passes):
                log(f"warm-up: unmeasured dmpflow pass {i + 1} of {args.warmup_passes}")
                warmup.append(measure(run, "dmpflow", in_topic, args.events, None, broker,
                                      tag=f"warmup{i + 1}"))
        res = {}
        expected = None
        for e in engines:
            # (an exactly-once engine's offsets count its transaction
            # markers too: it ends when its input is consumed and committed)
            res[e] = measure(run, e, in_topic, args.events, None if is_eos(e) else expected,
                             broker)
            if e == "dmpflow" and not res[e].get("error"):
                expected = res[e]["results"]
        latency = []
        peak = args.latency_peak or res.get("dmpflow", {}).get("events_per_s")
        if not args.no_latency and "dmpflow" in engines and peak:
            for f in (float(x) for x in args.latency_fractions.split(",")):
                r = measure_latency(run, int(peak * f), args.latency_seconds)
                r["fraction_of_peak"] = f
                latency.append(r)
        restore = {}
        if args.restore_keys > 0:
            r_topic = run.topic("restore-in")
            preload(run, r_topic, args.restore_keys, args.restore_keys, 1, 0.0,
                    end_events=False, gen_args=("--keys-in-order",))
            for e in engines:
                if e in ("dmpflow", "kstreams"):
                    restore[e] = measure_restore(run, e, r_topic, args.restore_keys)
        verification = None
        peers = {e: res[e]["output_topic"] for e in engines
                 if e != "dmpflow" and not res[e].get("error")}
        if "dmpflow" in res and not res["dmpflow"].get("error") and peers:
            verification = verify(run, res["dmpflow"]["output_topic"], peers)
        result.update(engines=res, warmup=warmup, startup=startup, verification=verification,
                      latency=latency, restore=restore, commands=run.commands)
        result["summary"] = summary(res, startup, verification, latency, restore)
        nm = {k: why for k, why in NOT_MEASURED.items() if result["summary"].get(k) is None}
        for e in ("kstreams", "quix", "eos", "kstreams_eos"):
            key = f"{e}_events_per_s"
            if result["summary"][key] is None:
                nm[key] = (res.get(e, {}).get("error") or "engine not run")
        result["not_measured"] = nm
    finally:
        if not args.keep:
            kafka.delete_matching(run.prefix)
            shutil.rmtree(workdir, ignore_errors=True)
        broker.close()

    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = dict(result["summary"])
    flat["details"] = {k: v for k, v in result.items() if k != "summary"}
    (out_dir / f"{args.name}.json").write_text(json.dumps(flat, indent=2, default=str) + "\n")
    report = Path(args.report) if args.report else (
        REPO / "bench" / "RESULTS.md" if args.name == "latest" else out_dir / f"{args.name}.md")
    report.write_text(markdown(result))
    log(f"wrote {out_dir / (args.name + '.json')} and {report}")
    print(json.dumps(result["summary"], indent=2))
    return 0 if all(not r.get("error") for r in result["engines"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
