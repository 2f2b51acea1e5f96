"""The HTTP endpoint against the real broker: /metrics counters move
consistently with the input (events in = records produced, dead letters =
poison planted, late events = the reference's late events, consumer lag
reaches 0, results = the reference's), every metric is documented in
docs/METRICS.md, /state/windows answers the same values as the published
results, and no planted secret appears in any log line or response."""

from __future__ import annotations

import json
import math
import re
import time

from reference import Measure, Window, compute
from support import REPO, encode_event, free_port, make_config, make_events
from support import http_get as get

PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity", "clicks": "1*clicks"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=2_000, measures=("score", "clicks"))]


def metrics(port: int) -> dict[str, float]:
    """name{labels} -> value."""
    status, text = get(port, "/metrics")
    assert status == 200
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def total(m: dict[str, float], name: str) -> float:
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def test_metrics_and_state_queries(kafka, dmpflow, tmp_path):
    events = make_events(9_000, 41, keys=40, step_ms=10, ooo=0.08, max_delay_ms=6_000,
                         null_clicks=0.3)
    poison = [{"user_id": events[i]["user_id"], "__raw": raw}
              for i, raw in ((10, b"\x02"), (500, encode_event(events[500]) + b"\x00"),
                             (4000, b"\x80" * 11))]
    records = events[:100] + poison[:1] + events[100:5000] + poison[1:] + events[5000:]
    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    dlq = kafka.topic(1, "dlq")
    produced = kafka.produce(src, records, PARTITIONS,
                             encode=lambda ev: ev["__raw"] if "__raw" in ev else encode_event(ev))
    good = [(p, k, e) for p, k, e in produced if "__raw" not in e]
    ref = compute(good, WINDOWS, [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert ref.late_by_window["t10"] > 0 and len(ref.results) > 100

    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200, dlq_topic=dlq)
    cfg = cfg.replace("[window t10]\n", "[window t10]\nretention.ms = 100000000000\n")
    cfg += f"\n[http]\nport = {port}\n"
    reader = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    assert reader.until(len(ref.results), timeout=60)

    # the counters catch up with the input; the lag reaches 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = metrics(port)
        lags = [v for k, v in m.items() if k.startswith("dmpflow_consumer_lag{")]
        if total(m, "dmpflow_events_total") == len(produced) and len(lags) == PARTITIONS \
                and not any(lags):
            break
        time.sleep(0.3)
    assert get(port, "/healthz") == (200, "ok\n")
    assert get(port, "/readyz")[0] == 200
    assert total(m, "dmpflow_events_total") == len(produced)
    assert total(m, "dmpflow_events_in_total") == len(produced)
    assert len(lags) == PARTITIONS and not any(lags), lags
    assert total(m, "dmpflow_dead_letters_total") == len(poison)
    assert m['dmpflow_dead_letters_total{class="trailing"}'] == 1
    assert m['dmpflow_dead_letters_total{class="varint"}'] == 1
    assert m['dmpflow_late_events_total{window="t10"}'] == ref.late_by_window["t10"]
    assert total(m, "dmpflow_results_out_total") == len(ref.results)
    assert m["dmpflow_assigned_partitions"] == PARTITIONS
    assert m["dmpflow_commit_duration_seconds_count"] > 0
    # the changelog (on by default): state changes written in committed
    # transactions, every partition restored (nothing to replay) and open
    assert total(m, "dmpflow_changelog_records_total") > 0
    assert m['dmpflow_transactions_total{result="committed"}'] > 0
    assert m["dmpflow_restores_total"] == PARTITIONS
    assert m["dmpflow_restoring_partitions"] == 0
    assert m["process_resident_memory_bytes"] > 1e6

    # every metric is documented
    doc = (REPO / "docs" / "METRICS.md").read_text()
    names = set(re.findall(r"^# HELP (\S+)", get(port, "/metrics")[1], re.M))
    assert names and all(f"`{n}`" in doc for n in names), sorted(n for n in names
                                                                if f"`{n}`" not in doc)

    # the state answers what was published
    published = {(r[3]["key"], r[3]["start"], r[3]["measure"]): r[3] for r in reader.records}
    for key in sorted({k for k, _s, _m in published})[:15]:
        status, body = get(port, f"/state/windows/t10/{key}")
        assert status == 200, body
        state = json.loads(body)
        assert state["window"] == "t10" and state["key"] == key
        seen = 0
        for w in state["windows"]:
            for mname, st in w["measures"].items():
                want = published.get((key, w["start"], mname))
                if want is None:
                    continue  # a window still open: not published yet
                assert w["final"] and w["end"] == want["end"]
                assert st["count"] == want["count"]
                for f in ("sum", "mean", "min", "max", "stddev"):
                    assert math.isclose(st[f], want[f], rel_tol=1e-9, abs_tol=1e-9), (key, f)
                seen += 1
        assert seen > 0, (key, state)
    assert get(port, "/state/windows/t10/no-such-key")[0] == 404
    assert get(port, "/state/windows/nope/user-001")[0] == 404
    assert get(port, "/state/groups/seg")[0] == 404
    assert get(port, "/state/patterns/p")[0] == 404
    assert get(port, "/nothing")[0] == 404
    assert dmpflow.stop(proc, timeout=10) == 0


def test_no_secret_in_logs_or_responses(kafka, dmpflow, tmp_path):
    canaries = ["CanarySasl7731", "CanarySslKey4410", "CanaryRegistry9902", "CanaryUrl5519"]
    src = kafka.topic(1, "in")
    dst = kafka.topic(1, "out")
    kafka.produce(src, make_events(300, 3, keys=5), 1)
    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200, log_level="debug",
                      input_extra=[f"registry.basic.auth.user.info = user:{canaries[2]}",
                                   f"registry.url = http://user:{canaries[3]}@127.0.0.1:1"])
    cfg = cfg.replace("[kafka]\n", "[kafka]\n"
                      f"sasl.username = someone\nsasl.password = {canaries[0]}\n"
                      f"ssl.key.password = {canaries[1]}\ndebug = conf,generic\n")
    cfg += f"\n[http]\nport = {port}\n"
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and get(port, "/readyz")[0] != 200:
        time.sleep(0.2)
    bodies = [get(port, p)[1] for p in ("/metrics", "/healthz", "/readyz",
                                        "/state/windows/t10/user-000", "/state/nope")]
    assert dmpflow.stop(proc, timeout=10) == 0
    logs = proc.stderr + proc.stdout
    assert "config [kafka] sasl.password = [redacted]" in logs, logs[-3000:]
    assert "config [input] registry.basic.auth.user.info = [redacted]" in logs
    assert "config [input] registry.url = http://[redacted]@127.0.0.1:1" in logs
    for c in canaries:
        assert c not in logs, f"{c} in the log"
        for b in bodies:
            assert c not in b, f"{c} in a response"


def test_json_log_file_reopened_on_sighup(kafka, dmpflow, tmp_path):
    """[log] format = json, file = F: every line is a JSON object; after the
    file is moved away (rotation) SIGHUP makes dmpflow write to a new F."""
    import signal

    src = kafka.topic(1, "in")
    dst = kafka.topic(1, "out")
    kafka.produce(src, make_events(300, 4, keys=5), 1)
    log = tmp_path / "dmpflow.log"
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200)
    cfg = cfg.replace("[log]\n", f"[log]\nformat = json\nfile = {log}\n")
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "assigned" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    rotated = tmp_path / "dmpflow.log.1"
    log.rename(rotated)
    proc.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert dmpflow.stop(proc, timeout=10) == 0
    first = [json.loads(line) for line in rotated.read_text().splitlines()]
    second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first and second, "nothing written after SIGHUP"
    assert {"ts", "level", "msg"} <= set(first[0]) and first[0]["level"] == "info"
    assert any(r["msg"].startswith("stopped: ") for r in second), second[-3:]
    assert "stopped" not in proc.stderr  # the log went to the file, not stderr
