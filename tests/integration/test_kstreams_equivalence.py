"""Issue 21: dmpflow and Kafka Streams 3.9 side by side on the same randomized
out-of-order topic, every window kind, checked window by window.

The Kafka Streams side is bench/peers/kstreams (WindowEquiv.java, built by
`make peer-jar`, which `make test-integration` runs): plain DSL windowed
aggregations with suppress(untilWindowCloses), the record cache off (with it,
Kafka Streams' own results at the store's retention boundary depend on when
its cache was flushed; docs/WINDOWS.md). The topic has disorder beyond every
grace period, events on window boundaries (times on whole seconds, and ±1 ms
of them, so that events sit exactly a window size, a gap or a grace apart)
and repeated times. One "flush" event per partition a minute after the data
closes every window in both engines.

For every (window definition, key, window): the same windows exist in both
(presence), with equal count and sum, min, max and mean within 1e-9
(relative). Kafka Streams gives a session's and a sliding window's end
inclusive; dmpflow's ends are exclusive (end + 1). Kafka Streams publishes
some sliding windows twice with different values (its suppress emits a window
at end + grace, while the aggregate still updates it at that stream time;
docs/WINDOWS.md "Where dmpflow differs"): dmpflow publishes the window once,
with Kafka Streams' last value. The late counts are compared too: dmpflow's
dmpflow_late_window_instances_total against Kafka Streams' dropped-records.
The independent reference (reference.py) must agree with dmpflow as well.
Prints the windows compared per kind."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reference import Measure, Window, compute
from support import REPO, assert_matches_reference, free_port, http_get, make_config, make_events, partition_for

JAR = REPO / "bench" / "peers" / "kstreams" / "target" / "kstreams-bench.jar"
PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [
    Window("tumble", "tumbling", size_ms=10_000, grace_ms=2_000),
    Window("hop", "hopping", size_ms=10_000, advance_ms=3_000, grace_ms=2_000),
    Window("slide", "sliding", size_ms=5_000, grace_ms=1_000),
    Window("sess", "session", gap_ms=3_000, grace_ms=1_000),
]
FLUSH_KEY = "~flush"


def ks_spec(w: Window) -> str:
    params = {"tumbling": (w.size_ms, w.grace_ms), "hopping": (w.size_ms, w.advance_ms, w.grace_ms),
              "sliding": (w.size_ms, w.grace_ms), "session": (w.gap_ms, w.grace_ms)}[w.kind]
    return ":".join([w.name, w.kind, *map(str, params)])


def boundary_events(n: int, seed: int) -> list[dict]:
    """make_events' stream (disorder up to 14 s, beyond every window and grace), 60 keys,
    with a third of the times moved onto whole seconds or 1 ms beside them,
    and some times repeated for the same key."""
    rng = random.Random(seed)
    events = make_events(n, seed, keys=60, step_ms=7, ooo=0.15, max_delay_ms=14_000, null_clicks=0.0)
    for i, ev in enumerate(events):
        r = rng.random()
        if r < 0.33:
            ev["ts"] = round(ev["ts"], -3) + rng.choice((-1, 0, 0, 0, 1))
        elif r < 0.38 and i:
            ev["ts"] = events[i - 1]["ts"]
            ev["user_id"] = events[i - 1]["user_id"]
    return events


def flush_events(last_ts: int) -> list[dict]:
    """One event per partition a minute after the data: every window of the
    data closes in both engines (their own windows stay open)."""
    out, seen, i = [], set(), 0
    while len(seen) < PARTITIONS:
        key = f"{FLUSH_KEY}{i}"
        i += 1
        if partition_for(key, PARTITIONS) not in seen:
            seen.add(partition_for(key, PARTITIONS))
            out.append({"user_id": key, "segment": "seg-0", "ts": last_ts + 60_000, "price": 1.0,
                        "quantity": 0, "clicks": None})
    return out


def dmpflow_id(rec: dict) -> tuple:
    return (rec["window"], rec["key"], rec["start"])


def ks_to_dmpflow(rec: dict) -> dict:
    """Kafka Streams' inclusive end of sessions and sliding windows, as dmpflow
    publishes it (exclusive)."""
    out = dict(rec)
    if rec["kind"] in ("session", "sliding"):
        out["end"] = rec["end"] + 1
    return out


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def metrics(port: int) -> dict[str, float]:
    status, text = http_get(port, "/metrics")
    assert status == 200
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
            for ln in text.splitlines() if ln and not ln.startswith("#")}


@pytest.mark.parametrize("seed", [21])
def test_dmpflow_equals_kafka_streams(kafka, dmpflow, tmp_path, seed):
    assert JAR.exists(), f"{JAR} is missing: build it with `make peer-jar` (Maven, Java 17)"
    data = boundary_events(10_000, seed)
    events = data + flush_events(max(e["ts"] for e in data))
    # Kafka Streams stamps a result with its window's event time (2023 here):
    # past the broker's 7-day retention, which would delete them at its next
    # check
    src, dst, ks_out = (kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out"),
                        kafka.topic(PARTITIONS, "ks", {"message.timestamp.type": "LogAppendTime"}))
    produced = kafka.produce(src, events, PARTITIONS)
    ref = compute(produced, WINDOWS, [Measure.parse(n, e) for n, e in MEASURES.items()])
    ref_ids = {(k[0], k[1], k[2]) for k in ref.results}
    for w in WINDOWS:  # the data reaches what the test is about
        assert ref.late_by_window[w.name] > 0, (w.name, ref.late_by_window)
        # a hopping event is late for several windows, a sliding one skips closed windows
        more = ref.late_pairs[w.name] > ref.late_by_window[w.name]
        assert more == (w.kind in ("hopping", "sliding")), (w.name, ref.late_by_window, ref.late_pairs)
    sessions = [r for r in ref.results.values() if r["kind"] == "session"]
    assert any(r["count"] > 1 for r in sessions) and any(r["count"] == 1 for r in sessions)

    # Kafka Streams
    t_ks = time.monotonic()
    metrics_file = tmp_path / "ks-dropped.json"
    ks_log = open(tmp_path / "kstreams.log", "wb")
    ks = subprocess.Popen(
        ["java", "-Xmx512m",
         # a warning per window an event skips (tens of thousands) slows it down
         "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals=error",
         "-cp", str(JAR), "dmpflow.bench.WindowEquiv",
         "--bootstrap", kafka.bootstrap, "--input", src, "--output", ks_out,
         "--app-id", f"{src}-ks", "--state-dir", str(tmp_path / "ks-state"),
         "--event-schema", str(REPO / "schemas" / "event.avsc"),
         "--result-schema", str(REPO / "schemas" / "window_result.avsc"),
         "--metrics-file", str(metrics_file), *[a for w in WINDOWS for a in ("--window", ks_spec(w))]],
        stdout=ks_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)

    # dmpflow, with its metrics endpoint
    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200) + f"\n[http]\nport = {port}\n"
    out = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))
    try:
        assert out.until(len(ref.results), timeout=90), (len(out.records), len(ref.results))
        out.drain(1.0)
        m = metrics(port)
        assert dmpflow.stop(proc, timeout=10) == 0
        assert not out.errors
        assert_matches_reference(out.records, ref)

        # Until Kafka Streams has published every window (then a little more:
        # a window it publishes twice may come again)
        ks_reader = kafka.reader(ks_out)
        deadline, seen, missing = time.monotonic() + 240, 0, set(ref_ids)
        while missing and time.monotonic() < deadline and ks.poll() is None:
            ks_reader.until(len(ks_reader.records) + 1, timeout=1)
            missing.difference_update(dmpflow_id(r) for *_, r in ks_reader.records[seen:])
            seen = len(ks_reader.records)
        ks_reader.drain(3.0)
    finally:
        if ks.poll() is None:
            ks.send_signal(signal.SIGTERM)
        try:
            ks.wait(60)
        except subprocess.TimeoutExpired:
            ks.kill()
        ks_log.close()
    log = (tmp_path / "kstreams.log").read_text(errors="replace")
    assert "window-equiv: started" in log, log[-3000:]
    print(f"\nKafka Streams: {len(ks_reader.records)} results in {time.monotonic() - t_ks:.0f} s")
    assert not ks_reader.errors

    # Window by window. dmpflow: one result per window; Kafka Streams: its
    # last publication of each.
    ours = {dmpflow_id(r): r for *_, r in out.records}
    theirs: dict[tuple, list[dict]] = {}
    for *_, r in ks_reader.records:
        if not r["key"].startswith(FLUSH_KEY):
            theirs.setdefault(dmpflow_id(r), []).append(ks_to_dmpflow(r))
    problems, report = [], []
    for w in WINDOWS:
        mine = {k for k in ours if k[0] == w.name}
        ks_ids = {k for k in theirs if k[0] == w.name}
        for k in sorted(mine - ks_ids)[:5]:
            problems.append(f"only dmpflow has {k}: {ours[k]}")
        for k in sorted(ks_ids - mine)[:5]:
            problems.append(f"only Kafka Streams has {k}: {theirs[k][-1]}")
        twice = changed = 0
        for k in sorted(mine & ks_ids):
            a, b = ours[k], theirs[k][-1]
            if len(theirs[k]) > 1:
                twice += 1
                changed += any(x["count"] != b["count"] or not close(x["sum"], b["sum"])
                               for x in theirs[k][:-1])
            bad = [f for f in ("end", "count") if a[f] != b[f]]
            bad += [f for f in ("sum", "min", "max", "mean") if not close(a[f], b[f])]
            if bad:
                problems.append(f"{k} differs in {bad}: dmpflow {a}, Kafka Streams {b}")
        if w.kind != "sliding" and twice:
            problems.append(f"{w.name}: Kafka Streams published {twice} windows more than once")
        dropped = json.loads(metrics_file.read_text())[w.name] if metrics_file.exists() else None
        late_inst = m[f'dmpflow_late_window_instances_total{{window="{w.name}"}}']
        late_ev = m[f'dmpflow_late_events_total{{window="{w.name}"}}']
        assert late_inst == ref.late_pairs[w.name], (w.name, late_inst, ref.late_pairs)
        if dropped != late_inst:
            problems.append(f"{w.name}: dmpflow late window instances {late_inst:.0f}, "
                            f"Kafka Streams dropped-records {dropped}")
        report.append(f"{w.kind:>8} {w.name}: {len(mine & ks_ids)} windows compared, "
                      f"{len(mine ^ ks_ids)} in one engine only; Kafka Streams published "
                      f"{twice} twice ({changed} with another value first); late: dmpflow "
                      f"{late_ev:.0f} events / {late_inst:.0f} window instances, Kafka Streams "
                      f"dropped-records {dropped}")
    print("\nkstreams equivalence (seed %d, %d events):\n  %s" % (seed, len(events), "\n  ".join(report)))
    assert not problems, "\n".join(report + problems[:40] + ["Kafka Streams' log:", log[-2000:]])
