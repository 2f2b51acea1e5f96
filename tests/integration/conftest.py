"""Fixtures of the dmpflow integration tests.

Environment:
  DMPFLOW_BOOTSTRAP  Kafka bootstrap servers (default 127.0.0.1:9092); start a
                     local broker with `scripts/kafka-local start`.
  DMPFLOW_REGISTRY   a schema registry's Confluent-compatible API (default
                     http://127.0.0.1:8081/apis/ccompat/v7); start a local
                     Apicurio Registry with `scripts/registry-local start`.
  DMPFLOW_BIN        the binary under test (default <repo>/build/dmpflow).

An unreachable broker or registry or a missing binary makes the tests that
need them fail (never skip) with a message saying what to do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import (  # noqa: E402
    REPO,
    bootstrap_servers,
    decode_result,
    dmpflow_path,
    encode_event,
    partition_for,
)

QUIET = {"log_level": 3}  # librdkafka: errors only on stderr


# --------------------------------------------------------------------------
# Reports available to fixtures (to print logs of failed tests)
# --------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _failed(request) -> bool:
    node = request.node
    return any(getattr(node, f"rep_{w}", None) is not None and getattr(node, f"rep_{w}").failed
               for w in ("setup", "call"))


# --------------------------------------------------------------------------
# Broker and binary
# --------------------------------------------------------------------------

_broker_state: dict[str, Any] = {}


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The broker's bootstrap servers; fails (does not skip) if unreachable."""
    bs = bootstrap_servers()
    if "error" not in _broker_state and "ok" not in _broker_state:
        try:
            md = AdminClient({"bootstrap.servers": bs, **QUIET}).list_topics(timeout=10)
            if not md.brokers:
                raise KafkaException("metadata lists no brokers")
            _broker_state["ok"] = True
        except Exception as e:  # noqa: BLE001
            _broker_state["error"] = (
                f"Kafka broker at {bs} (DMPFLOW_BOOTSTRAP) is unreachable: {e}. "
                f"Start one with `scripts/kafka-local start` or set DMPFLOW_BOOTSTRAP."
            )
    if "error" in _broker_state:
        pytest.fail(_broker_state["error"], pytrace=False)
    return bs


class Registry:
    """The real schema registry of the session (scripts/registry-local:
    Apicurio Registry's Confluent-compatible API), spoken to over REST.
    Subjects are named after each test's unique topics; ids are Apicurio's
    content ids (the same schema text has the same id in every subject), so
    tests ask for ids rather than assume them."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Content-Type": "application/vnd.schemaregistry.v1+json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path: str) -> Any:
        status, answer = self.call("GET", path)
        assert status == 200, f"GET {path}: HTTP {status} {answer}"
        return answer

    def register(self, subject: str, schema: Any, references: Sequence[Mapping] = ()) -> int:
        """Registers schema (a dict or JSON text) under subject; its id."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        status, answer = self.call("POST", f"/subjects/{subject}/versions",
                                   {"schema": text, "references": list(references)})
        assert status == 200, f"registering {subject}: HTTP {status} {answer}"
        return answer["id"]

    def version(self, subject: str, version: int | str = "latest") -> Mapping[str, Any]:
        """{"subject", "version", "id", "schema", "references"?}"""
        return self.get(f"/subjects/{subject}/versions/{version}")


_registry_state: dict[str, Any] = {}


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The session's schema registry; fails (does not skip) if unreachable."""
    url = os.environ.get("DMPFLOW_REGISTRY", "http://127.0.0.1:8081/apis/ccompat/v7")
    if "error" not in _registry_state and "ok" not in _registry_state:
        try:
            Registry(url).get("/subjects")
            _registry_state["ok"] = True
        except Exception as e:  # noqa: BLE001
            _registry_state["error"] = (
                f"schema registry at {url} (DMPFLOW_REGISTRY) is unreachable: {e}. Start one "
                f"with `scripts/registry-local start` (REGISTRY_PORT sets its port) and set "
                f"DMPFLOW_REGISTRY to the URL it prints, or run scripts/run-integration-tests.")
    if "error" in _registry_state:
        pytest.fail(_registry_state["error"], pytrace=False)
    return Registry(url)


@pytest.fixture(scope="session")
def dmpflow_bin() -> Path:
    path = dmpflow_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"dmpflow binary not found or not executable at {path}: build it (make) "
            f"or set DMPFLOW_BIN",
            pytrace=False,
        )
    return path


# --------------------------------------------------------------------------
# Kafka helpers: topics, producing, reading
# --------------------------------------------------------------------------


class OutputReader:
    """Reads every partition of a topic from the beginning, accumulating
    (partition, offset, key, decoded WindowResult) in ``records``."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, decode=decode_result):
        self.topic = topic
        self.decode = decode
        self.records: list[tuple[int, int, bytes | None, Any]] = []
        self.headers: list[dict[str, bytes]] = []  # parallel to records
        self.errors: list[str] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"it-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 20,
                **QUIET,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

    def _poll_once(self, timeout: float) -> None:
        for msg in self.consumer.consume(num_messages=10000, timeout=timeout):
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(msg.error()))
                continue
            try:
                rec = self.decode(msg.value())
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"p{msg.partition()}@{msg.offset()}: undecodable value ({e}): {msg.value()!r}")
                continue
            self.records.append((msg.partition(), msg.offset(), msg.key(), rec))
            self.headers.append(dict(msg.headers() or []))

    def until(self, count: int, timeout: float = 60.0) -> bool:
        """Read until at least ``count`` records were seen or timeout; True if reached."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            # consume() blocks until num_messages or timeout: keep the timeout short
            self._poll_once(min(0.05, max(0.01, deadline - time.monotonic())))
        return len(self.records) >= count

    def drain(self, seconds: float = 2.0) -> None:
        """Keep reading for ``seconds`` (to catch extra or late records)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._poll_once(min(0.2, max(0.01, deadline - time.monotonic())))

    def close(self) -> None:
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001
            pass


class KafkaHelper:
    def __init__(self, bootstrap: str, test_name: str):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        self.prefix = "it-" + re.sub(r"[^A-Za-z0-9._-]+", "-", test_name)[:80].strip("-")
        self.topics: list[str] = []
        self.readers: list[OutputReader] = []

    def topic(self, partitions: int, suffix: str = "t", config: Mapping[str, str] | None = None) -> str:
        """Create a uniquely named topic (with topic ``config``) and wait until
        all partitions have a leader."""
        name = f"{self.prefix}-{suffix}-{uuid.uuid4().hex[:8]}"
        futs = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                                  config=dict(config or {}))])
        futs[name].result(timeout=30)
        self.topics.append(name)
        deadline = time.monotonic() + 30
        while True:
            md = self.admin.list_topics(topic=name, timeout=10)
            t = md.topics.get(name)
            if (t is not None and t.error is None and len(t.partitions) == partitions
                    and all(p.leader >= 0 and p.error is None for p in t.partitions.values())):
                return name
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {name} not ready after 30 s: {t and t.partitions}")
            time.sleep(0.1)

    def partitions_of(self, topic: str) -> int:
        return len(self.admin.list_topics(topic=topic, timeout=10).topics[topic].partitions)

    def produce(
        self,
        topic: str,
        events: Sequence[Mapping[str, Any]],
        partitions: int,
        key_field: str = "user_id",
        encode=encode_event,
        producer_conf: Mapping[str, Any] | None = None,
    ) -> list[tuple[int, str, Mapping[str, Any]]]:
        """Produce Avro events (encoded by ``encode``), each to partition
        crc32(key) % partitions, in list order (idempotent producer:
        per-partition order is preserved).
        producer_conf overrides the producer's settings (e.g. batch sizes).
        Returns (partition, key, event) in per-partition offset order."""
        errors: list[str] = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(str(err))

        p = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 20,
                "batch.num.messages": 10000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                **QUIET,
                **(producer_conf or {}),
            }
        )
        out = []
        for ev in events:
            key = ev[key_field]
            part = partition_for(key, partitions)
            value = encode(ev)
            while True:
                try:
                    p.produce(topic, value=value, key=key.encode("utf-8"), partition=part, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.1)
            out.append((part, key, ev))
        remaining = p.flush(120)
        assert remaining == 0, f"{remaining} messages not delivered to {topic}"
        assert not errors, f"delivery errors producing to {topic}: {errors[:5]}"
        return out

    def reader(self, topic: str, decode=decode_result) -> OutputReader:
        r = OutputReader(self.bootstrap, topic, self.partitions_of(topic), decode)
        self.readers.append(r)
        return r

    def cleanup(self) -> None:
        for r in self.readers:
            r.close()
        if self.topics:
            try:
                futs = self.admin.delete_topics(self.topics, operation_timeout=10)
                for f in futs.values():
                    try:
                        f.result(timeout=15)
                    except Exception:  # noqa: BLE001
                        pass
            except Exception:  # noqa: BLE001
                pass


@pytest.fixture
def kafka(bootstrap, request) -> Iterable[KafkaHelper]:
    h = KafkaHelper(bootstrap, request.node.name)
    yield h
    h.cleanup()


# --------------------------------------------------------------------------
# Running dmpflow
# --------------------------------------------------------------------------


class Proc:
    def __init__(self, popen: subprocess.Popen, stdout: Path, stderr: Path, argv: list[str]):
        self.popen = popen
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.argv = argv

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if still running after timeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


class DmpflowRunner:
    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.procs: list[Proc] = []
        self._n = 0

    def write_config(self, text: str, name: str = "dmpflow.conf") -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def start(self, *args: str) -> Proc:
        self._n += 1
        out = self.workdir / f"dmpflow-{self._n}.stdout"
        err = self.workdir / f"dmpflow-{self._n}.stderr"
        argv = [str(self.binary), *map(str, args)]
        with open(out, "wb") as fo, open(err, "wb") as fe:
            popen = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, cwd=REPO)
        proc = Proc(popen, out, err, argv)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 60.0) -> Proc:
        """Run to completion; fails the test if it does not exit within timeout."""
        proc = self.start(*args)
        rc = proc.wait(timeout)
        if rc is None:
            proc.kill()
            pytest.fail(f"`{' '.join(proc.argv)}` did not exit within {timeout} s\nstderr:\n{proc.stderr[-4000:]}")
        return proc

    def stop(self, proc: Proc, timeout: float = 10.0) -> int:
        """SIGTERM and wait; fails the test if it does not exit in time."""
        proc.signal(signal.SIGTERM)
        rc = proc.wait(timeout)
        if rc is None:
            proc.kill()
            pytest.fail(f"dmpflow (pid {proc.pid}) did not exit within {timeout} s of SIGTERM")
        return rc

    def cleanup(self, print_logs: bool) -> None:
        for p in self.procs:
            p.kill()
        if print_logs:
            for p in self.procs:
                print(f"===== {' '.join(p.argv)}  (exit {p.popen.returncode})")
                for label, text in (("stdout", p.stdout), ("stderr", p.stderr)):
                    if text:
                        tail = text[-6000:]
                        print(f"----- {label}{' (last 6000 chars)' if len(text) > 6000 else ''}:\n{tail}")


@pytest.fixture
def dmpflow(dmpflow_bin, tmp_path, request) -> Iterable[DmpflowRunner]:
    runner = DmpflowRunner(dmpflow_bin, tmp_path)
    yield runner
    runner.cleanup(print_logs=_failed(request))
