"""`dmpflow demo`: the embedded default (librdkafka's mock cluster, in-process)
must run the whole pipeline with nothing else installed and show results."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error

from support import REPO, dmpflow_path


def test_demo_runs_pipeline_and_reads_results_back():
    proc = subprocess.run([str(dmpflow_path()), "demo", "--seconds", "7"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr}"

    # At 5,000 events/s and event time at 5x, 7 s cover ~35 s of event
    # time: at least two 10 s windows close and are printed with 5 ranks.
    windows = re.findall(r"window per_10s \[(\d\d:\d\d:\d\d), (\d\d:\d\d:\d\d)\)\s+(\d+) keys", out)
    assert len(windows) >= 2, out
    ranks = re.findall(r"^\s+(\d)\s+user_\d+\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", out, re.M)
    assert len(ranks) >= 10, out
    # Within a window the ranking is by sum, descending.
    first = [float(s) for _, s, _, _ in ranks[:5]]
    assert first == sorted(first, reverse=True), first

    m = re.search(r"summary: (\d+) events processed, (\d+) results published \((\d+) read back\), "
                  r"(\d+) late events dropped, (\d+) decode errors", out)
    assert m, out
    events, published, read_back, late, decode_errors = map(int, m.groups())
    assert events > 20000
    assert published > 0 and read_back == published
    assert decode_errors == 0
    assert late > 0  # the demo's generator sends 2 % of events up to 3 s late, grace is 1 s

    # Patterns are shown as they are found: the best two segments of every
    # closed 10 s window, #1 with the higher mean.
    tops = re.findall(r"pattern top_segments \[(\S+), (\S+)\)  #(\d) segment seg_\d+: "
                      r"mean\(score\) = ([\d.]+) over (\d+) events", out)
    assert len(tops) >= 4, out
    by_window: dict[str, dict[int, float]] = {}
    for start, _end, rank, mean, _n in tops:
        by_window.setdefault(start, {})[int(rank)] = float(mean)
    assert all(set(r) == {1, 2} and r[1] >= r[2] for r in by_window.values()), by_window


def test_demo_serves_its_live_page_while_it_runs():
    """`dmpflow demo` prints the URL of its live page and serves it (and the
    JSON it reads) while it runs; a taken port moves it to the next one."""
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        taken = s.getsockname()[1]
        s.listen()
        proc = subprocess.Popen([str(dmpflow_path()), "demo", "--seconds", "6", "--http-port",
                                 str(taken)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            url = None
            for _ in range(10):
                m = re.search(r"^live page: (http://127\.0\.0\.1:(\d+)/) ", proc.stdout.readline())
                if m:
                    url, port = m.group(1), int(m.group(2))
                    break
            assert url and port != taken, url
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200 and b"<title>dmpflow</title>" in r.read()
            events = 0
            for _ in range(50):  # the processing thread publishes it every 500 ms
                try:
                    with urllib.request.urlopen(url + "api/status", timeout=10) as r:
                        events = json.loads(r.read())["metrics"]["totals"]["events"]
                except urllib.error.HTTPError:
                    pass
                if events > 0:
                    break
                time.sleep(0.2)
            assert events > 0
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        finally:
            proc.kill()
