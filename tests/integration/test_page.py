"""The live page in a real browser: headless Chromium (Debian's `chromium`,
driven by Playwright for Python) loads GET / of a daemon on the real broker,
with basic auth on. The test waits for the charts to draw, then checks that
every number the page shows equals /metrics once the input is processed,
that a planted anomaly appears in the pattern feed, that a key typed in the
search box shows its windows as /state/windows answers them, that a key
holding markup is shown as text (never run), and saves a screenshot under
the test's output directory (and, with DMPFLOW_README_SCREENSHOT=PATH, at
PATH: `make screenshot` refreshes the README's)."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer

from reference import Window
from reference_groups import Group, Pattern
from support import encode_event, make_config, partition_for
from test_groups import sections
from test_service import free_port

PARTITIONS = 3
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=1_000, measures=("score",))]
AUTH = ("viewer", "CanaryPagePw31")
XSS_KEY = '<img src=x onerror="window.__xss=1">'
SPIKE_KEY = "user-spike"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def events_between(t0: int, t1: int, rng: random.Random, spike_at: int | None = None) -> list[dict]:
    """Events every 5 ms of event time in [t0, t1): 40 users, 4 segments;
    SPIKE_KEY steady at ~100 every 250 ms (its score jumps at spike_at);
    XSS_KEY once a second with a high price (a top key of each window)."""
    out = []
    for t in range(t0, t1, 5):
        if t % 250 == 0:
            price = 5_000.0 if spike_at is not None and spike_at <= t < spike_at + 10_000 \
                else 100.0 + rng.uniform(-1, 1)
            key, seg = SPIKE_KEY, "seg-0"
        elif t % 1000 == 5:
            key, seg, price = XSS_KEY, "seg-1", 900.0
        else:
            key, seg, price = f"user-{rng.randrange(40):02d}", f"seg-{rng.randrange(4)}", \
                rng.uniform(1, 200)
        delay = rng.randint(1, 3_000) if rng.random() < 0.02 else 0  # some arrive late
        out.append({"user_id": key, "segment": seg, "ts": t - delay, "price": price,
                    "quantity": rng.randint(0, 10), "clicks": None})
    return out


def produce(producer: Producer, topic: str, events: list[dict]) -> None:
    for ev in events:
        while True:
            try:
                producer.produce(topic, encode_event(ev), key=ev["user_id"].encode(),
                                 partition=partition_for(ev["user_id"], PARTITIONS))
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def fetch(port: int, path: str):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={
        "Authorization": "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def metrics(port: int) -> dict[str, float]:
    out = {}
    for line in fetch(port, "/metrics").splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def shown_numbers(page) -> tuple[dict[str, int], dict[str, int]]:
    """The page's numbers as shown: [data-metric] and [data-metric-sum]."""
    def parse(text: str) -> int:
        digits = text.replace(",", "").strip()
        assert digits.lstrip("-").isdigit(), f"not a number on the page: {text!r}"
        return int(digits)
    one = page.eval_on_selector_all("[data-metric]", "els => els.map(e => [e.dataset.metric, e.textContent])")
    sums = page.eval_on_selector_all("[data-metric-sum]",
                                     "els => els.map(e => [e.dataset.metricSum, e.textContent])")
    return {k: parse(v) for k, v in one}, {k: parse(v) for k, v in sums}


def mismatches(page, port: int) -> list[str]:
    one, sums = shown_numbers(page)
    m = metrics(port)
    bad = [f"{k}: page {v}, /metrics {m.get(k)}" for k, v in one.items() if m.get(k) != v]
    for k, v in sums.items():
        want = sum(x for n, x in m.items() if n == k or n.startswith(k + "{"))
        if want != v:
            bad.append(f"sum {k}: page {v}, /metrics {want}")
    return bad


def test_live_page_in_chromium(kafka, dmpflow, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run scripts/deps", pytrace=False)
    from playwright.sync_api import sync_playwright  # tests/requirements.txt

    rng = random.Random(4)
    now = int(time.time() * 1000) // 10_000 * 10_000
    t0 = now - 120_000  # two minutes of event time behind the clock
    src, out = kafka.topic(PARTITIONS, "in"), kafka.topic(PARTITIONS, "out")
    gtopic, ptopic, dlq = kafka.topic(1, "groups"), kafka.topic(1, "patterns"), kafka.topic(1, "dlq")
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 20, "log_level": 3})
    first = events_between(t0, t0 + 80_000, rng, spike_at=t0 + 60_000)
    produce(producer, src, first)
    for raw in (b"\x02", b"\x80" * 11):  # two dead letters
        producer.produce(src, raw, key=b"user-00", partition=partition_for("user-00", PARTITIONS))
    assert producer.flush(30) == 0
    n_events = len(first) + 2

    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=out,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200, dlq_topic=dlq)
    cfg = cfg.replace("[window t10]\n", "[window t10]\nretention.ms = 100000000000\n")
    cfg += "\n" + sections([Group("seg", field="segment", windows=("t10",))],
                           [Pattern("top", "topk", "t10", "score", source="group:seg", k=2),
                            Pattern("odd", "anomaly", "t10", "score", z=4.0, min_count=3)],
                           gtopic, ptopic)
    cfg += f"\n[http]\nport = {port}\nauth.user.info = {AUTH[0]}:{AUTH[1]}\n"
    proc = dmpflow.start("run", "-c", dmpflow.write_config(cfg))

    # more events while the page is open, so that the rate chart moves
    live_done = threading.Event()
    live: list[dict] = []

    def stream() -> None:
        p = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 20, "log_level": 3})
        t = t0 + 80_000
        for _ in range(6):
            evs = events_between(t, t + 8_000, rng)
            produce(p, src, evs)
            live.extend(evs)
            t += 8_000
            time.sleep(0.8)
        live_done.set()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            ctx = browser.new_context(http_credentials={"username": AUTH[0], "password": AUTH[1]},
                                      viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # (the 404 of the search for a missing key is expected)
            page.on("console", lambda m: errors.append(m.text)
                    if m.type == "error" and "404" not in m.text else None)
            deadline = time.monotonic() + 30
            while True:  # the endpoint comes up with the daemon
                try:
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
                    break
                except Exception:  # noqa: BLE001
                    assert time.monotonic() < deadline, "the page never loaded"
                    time.sleep(0.3)
            threading.Thread(target=stream, daemon=True).start()

            # the charts draw
            page.wait_for_function(
                "() => Number(document.querySelector('#chart-rates').dataset.drawn) > 2 && "
                "document.querySelector('#chart-rates path.series') !== null", timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.group-chart')].some(s => Number(s.dataset.drawn) > 3)",
                timeout=60_000)
            page.wait_for_function("() => Number(document.querySelector('#chart-watermark').dataset.drawn) > 0",
                                   timeout=30_000)

            # once everything is processed, every number shown equals /metrics
            assert live_done.wait(120)
            total = n_events + len(live)
            deadline = time.monotonic() + 60
            while metrics(port).get("dmpflow_events_total") != total and time.monotonic() < deadline:
                time.sleep(0.3)
            assert metrics(port)["dmpflow_events_total"] == total
            deadline = time.monotonic() + 30
            bad = mismatches(page, port)
            while bad and time.monotonic() < deadline:
                time.sleep(0.5)
                bad = mismatches(page, port)
            assert not bad, bad
            one, sums = shown_numbers(page)
            assert one["dmpflow_events_total"] == total and sums["dmpflow_dead_letters_total"] == 2
            assert len([k for k in one if k.startswith("dmpflow_consumer_lag{")]) == PARTITIONS
            assert 'dmpflow_dead_letters_total{class="varint"}' in one
            assert sums["dmpflow_late_events_total"] > 0

            # the planted anomaly is in the pattern feed, with its z-score
            spike = page.wait_for_selector(
                f'#feed li[data-pattern="odd"][data-subject="{SPIKE_KEY}"]', timeout=30_000)
            assert "z = " in spike.text_content()
            assert page.query_selector('#feed li[data-pattern="top"][data-kind="topk"]')

            # a key typed in the search box shows its windows, as /state answers
            want = json.loads(fetch(port, f"/state/windows/t10/{SPIKE_KEY}"))
            page.select_option("#search-window", "t10")
            page.fill("#search-key", SPIKE_KEY)
            page.click("#search button")
            page.wait_for_selector(f'#search-table[data-key="{SPIKE_KEY}"]', timeout=10_000)
            rows = page.eval_on_selector_all("#search-table tbody tr",
                                             "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
            assert len(rows) == len(want["windows"]) > 3
            for row, w in zip(rows, want["windows"]):
                assert int(row[2].replace(",", "")) == w["measures"]["score"]["count"]
            page.fill("#search-key", "no-such-key")
            page.click("#search button")
            page.wait_for_selector("#search-result .error[data-status='404']", timeout=10_000)

            # markup in a key is text: shown as it is, never run
            cells = page.eval_on_selector_all("#tops td.key", "els => els.map(e => e.textContent)")
            assert XSS_KEY in cells, cells[:12]
            page.fill("#search-key", XSS_KEY)
            page.click("#search button")
            page.wait_for_selector("#search-table", timeout=10_000)
            assert page.text_content("#search-result b") == XSS_KEY
            assert page.evaluate("() => window.__xss") is None
            assert page.query_selector('img[src="x"]') is None
            assert not errors, errors

            page.fill("#search-key", SPIKE_KEY)  # for the picture
            page.click("#search button")
            page.wait_for_selector(f'#search-table[data-key="{SPIKE_KEY}"]', timeout=10_000)
            shot = tmp_path / "live-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            if os.environ.get("DMPFLOW_README_SCREENSHOT"):
                shutil.copy(shot, os.environ["DMPFLOW_README_SCREENSHOT"])
        finally:
            browser.close()
    assert dmpflow.stop(proc, timeout=15) == 0
