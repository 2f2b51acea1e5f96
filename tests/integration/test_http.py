"""The HTTP endpoint of a daemon on the real broker, on 127.0.0.1:

- under 16 concurrent loops of /state queries (a bounded load: each loop
  makes LOOP_REQUESTS requests), /healthz, /readyz and /metrics keep being
  answered, all 200, in every tenth of the load; every state query is
  answered by the processing thread (the endpoint's own counter agrees) and
  none is refused. The latency percentiles of both are printed (figures in
  docs/PERFORMANCE.md); no time is asserted.
- basic auth ([http] auth.user.info): the probes are exempt, everything
  else needs it, the password is redacted in the log and never answered;
  malformed query parameters are 400 with JSON."""

from __future__ import annotations

import base64
import http.client
import json
import multiprocessing as mp
import os
import re
import time

from reference import Window
from reference_groups import Group, Pattern
from support import encode_event, make_config, make_events
from test_groups import sections
from test_service import free_port, get, metrics

PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=1_000, measures=("score",))]
LOOPS = 16
LOOP_REQUESTS = 200


def pipeline(kafka, dmpflow, tmp_path, extra: str = ""):
    """A daemon over 6,000 events with a group and a pattern; returns
    (proc, port, keys) once it has processed them all."""
    events = make_events(6_000, 12, keys=40, step_ms=10, ooo=0.02, max_delay_ms=2_000)
    src, out = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out")
    gtopic, ptopic = kafka.topic(1, "groups"), kafka.topic(1, "patterns")
    kafka.produce(src, events, PARTITIONS)
    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=out,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200)
    cfg = cfg.replace("[window t10]\n", "[window t10]\nretention.ms = 100000000000\n")
    cfg += "\n" + sections([Group("seg", field="segment", windows=("t10",))],
                           [Pattern("top", "topk", "t10", "score", source="group:seg", k=2)],
                           gtopic, ptopic)
    cfg += f"\n[http]\nport = {port}\n{extra}\n"
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    return proc, port, sorted({e["user_id"] for e in events}), len(events)


def state_loop(port: int, i: int, keys: list[str], q) -> None:
    """One loop of state queries on a kept-alive connection: (status,
    latency, completion time) per request. Niced, so that 16 client
    processes on 2 cores do not starve the one that measures the probes."""
    os.nice(5)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for j in range(LOOP_REQUESTS):
        path = (f"/state/windows/t10/{keys[(i * 7 + j) % len(keys)]}", "/state/groups/seg",
                "/state/patterns/top?last=20")[j % 3]
        t = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        out.append((r.status, time.perf_counter() - t, time.monotonic()))
    q.put(out)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def test_health_answered_under_state_load(kafka, dmpflow, tmp_path, capsys):
    proc, port, keys, n_events = pipeline(kafka, dmpflow, tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if get(port, "/readyz")[0] == 200 and \
                metrics(port).get("dmpflow_events_total") == n_events:
            break
        time.sleep(0.2)
    assert metrics(port)["dmpflow_events_total"] == n_events
    before = metrics(port)['dmpflow_http_state_queries_total{result="answered"}']

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    loops = [ctx.Process(target=state_loop, args=(port, i, keys, q)) for i in range(LOOPS)]
    for p in loops:
        p.start()
    health: list[tuple[str, int, float, float]] = []  # path, status, latency, when
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    results = []
    while len(results) < LOOPS:
        for path in ("/healthz", "/readyz", "/metrics"):
            t = time.perf_counter()
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            health.append((path, r.status, time.perf_counter() - t, time.monotonic()))
        while not q.empty():
            results.append(q.get())
    for p in loops:
        p.join(timeout=30)
    state = [x for res in results for x in res]

    assert len(state) == LOOPS * LOOP_REQUESTS
    assert {s for s, _l, _t in state} <= {200, 404}, {s for s, _l, _t in state}
    assert sum(s == 200 for s, _l, _t in state) > len(state) // 2
    assert all(s == 200 for _p, s, _l, _t in health), [h for h in health if h[1] != 200][:3]
    # health answers kept coming while the state queries were answered
    first, last = min(t for _s, _l, t in state), max(t for _s, _l, t in state)
    during = [h for h in health if first <= h[3] <= last]
    assert len(during) >= 30, (len(during), len(health))
    assert {p for p, _s, _l, _t in during} == {"/healthz", "/readyz", "/metrics"}
    # every state query was answered by the processing thread, none refused
    # (the metrics text is rebuilt every 500 ms)
    answered = 'dmpflow_http_state_queries_total{result="answered"}'
    deadline = time.monotonic() + 20
    while metrics(port)[answered] - before < len(state) and time.monotonic() < deadline:
        time.sleep(0.1)
    m = metrics(port)
    assert m['dmpflow_http_state_queries_total{result="answered"}'] - before == len(state)
    assert m['dmpflow_http_state_queries_total{result="rejected"}'] == 0
    assert m['dmpflow_http_state_queries_total{result="expired"}'] == 0
    assert dmpflow.stop(proc, timeout=15) == 0

    hl = [l for _p, _s, l, _t in health]
    sl = [l for _s, l, _t in state]
    with capsys.disabled():
        print(f"\n  HTTP under {LOOPS} concurrent /state loops ({len(state)} state queries): "
              f"/healthz+/readyz+/metrics n={len(hl)} p50 {pct(hl, .5):.2f} ms, "
              f"p90 {pct(hl, .9):.2f} ms, p99 {pct(hl, .99):.2f} ms, max {max(hl) * 1000:.2f} ms; "
              f"/state p50 {pct(sl, .5):.2f} ms, p90 {pct(sl, .9):.2f} ms, "
              f"p99 {pct(sl, .99):.2f} ms, max {max(sl) * 1000:.2f} ms")


def request(port: int, path: str, auth: str | None = None, method: str = "GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    c.request(method, path, headers=headers)
    r = c.getresponse()
    body = r.read().decode("utf-8", "replace")
    return r.status, dict(r.getheaders()), body


def test_basic_auth_and_bad_parameters(kafka, dmpflow, tmp_path):
    secret = "CanaryHttpPw4471"
    proc, port, keys, n = pipeline(kafka, dmpflow, tmp_path,
                                   extra=f"auth.user.info = ops:{secret}")
    good = f"ops:{secret}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and get(port, "/readyz")[0] != 200:
        time.sleep(0.2)
    while time.monotonic() < deadline and \
            request(port, f"/state/windows/t10/{keys[0]}", good)[0] != 200:
        time.sleep(0.2)  # until a commit holds the key's windows
    bodies = []
    assert request(port, "/healthz")[:1] == (200,)
    assert request(port, "/readyz")[0] == 200
    for path in ("/", "/dmpflow.js", "/metrics", "/api/status", "/api/results",
                 f"/state/windows/t10/{keys[0]}", "/state/groups/seg"):
        status, headers, body = request(port, path)
        assert status == 401 and headers.get("WWW-Authenticate") == 'Basic realm="dmpflow"', path
        assert json.loads(body) == {"error": "authentication required"}
        assert request(port, path, "ops:wrong")[0] == 401
        status, _h, body = request(port, path, good)
        assert status == 200, (path, body)
        bodies.append(body)
    status, _h, body = request(port, "/api/status", good)
    st = json.loads(body)
    assert st["metrics"]["totals"]["events"] <= n and st["input_topic"]

    # malformed parameters: 400 with JSON, and the daemon goes on
    for path in ("/state/patterns/top?last=abc", "/state/patterns/top?last=0",
                 "/state/patterns/top?last=1e3", f"/state/windows/t10/{keys[0]}?x=1",
                 "/api/status?seconds=10", "/metrics/x", "/state/patterns/top?last=101"):
        status, headers, body = request(port, path, good)
        want = 404 if path == "/metrics/x" else 400
        assert status == want and "error" in json.loads(body), (path, status, body)
        assert headers["Content-Type"] == "application/json"
        bodies.append(body)
    status, _h, body = request(port, "/metrics", good, method="DELETE")
    assert status == 405 and json.loads(body)["error"]
    assert request(port, "/healthz")[0] == 200
    assert dmpflow.stop(proc, timeout=15) == 0
    logs = proc.stderr
    assert "config [http] auth.user.info = [redacted]" in logs, logs[-2000:]
    assert secret not in logs
    assert all(secret not in b for b in bodies)
    assert re.search(r"http: listening on 127\.0\.0\.1:\d+ .*basic auth", logs)
