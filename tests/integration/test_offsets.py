"""Where consumption starts. A partition without stored state starts at
`[input] auto.offset.reset` as of its assignment (dmpflow resolves the
logical offset before it reports ready); a partition with stored state
resumes at the stored offset whatever auto.offset.reset says."""

from __future__ import annotations

import time

from reference import Measure, Window, compute
from support import assert_matches_reference, make_config, make_events
from test_service import free_port, get

PARTITIONS = 2
MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("t10", "tumbling", size_ms=10_000, grace_ms=1_000, measures=("score",))]
T0 = 1_700_000_003_000


def wait_ready(port: int, proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr[-3000:]
        if get(port, "/readyz")[0] == 200:
            return
        time.sleep(0.05)
    raise AssertionError("dmpflow not ready")


def test_latest_starts_at_assignment_and_stored_offsets_win(kafka, dmpflow, tmp_path):
    before = make_events(2_000, 61, keys=12, t0=T0, ooo=0.0)
    during = make_events(3_000, 62, keys=12, t0=T0 + 1_000_000, ooo=0.05, max_delay_ms=3_000)
    after = make_events(3_000, 63, keys=12, t0=T0 + 2_000_000, ooo=0.05, max_delay_ms=3_000)
    measures = [Measure.parse(n, x) for n, x in MEASURES.items()]

    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    kafka.produce(src, before, PARTITIONS)  # there before dmpflow: skipped
    port = free_port()
    cfg = make_config(bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst,
                      state_dir=tmp_path / "state", group_id=f"{src}-g", measures=MEASURES,
                      windows=WINDOWS, commit_interval_ms=200)
    assert "auto.offset.reset = earliest" in cfg
    cfg = cfg.replace("auto.offset.reset = earliest", "auto.offset.reset = latest")
    cfg += f"\n[http]\nport = {port}\n"
    conf = dmpflow.write_config(cfg)
    reader = kafka.reader(dst)

    proc = dmpflow.start("run", "-c", conf)
    wait_ready(port, proc)
    # produced right after readiness: none of it may be skipped
    produced = kafka.produce(src, during, PARTITIONS)
    ref = compute(produced, WINDOWS, measures)
    assert len(ref.results) > 20
    assert reader.until(len(ref.results), timeout=60)
    reader.drain(1.0)
    assert_matches_reference(reader.records, ref)
    assert dmpflow.stop(proc) == 0

    # produced while it is down; the restart resumes at the stored offsets,
    # not at the (latest) end, so these are all counted, once
    produced += kafka.produce(src, after, PARTITIONS)
    produced.sort(key=lambda r: r[0])  # stable: per-partition order is kept
    ref = compute(produced, WINDOWS, measures)
    proc = dmpflow.start("run", "-c", conf)
    assert reader.until(len(ref.results), timeout=60)
    reader.drain(1.0)
    assert_matches_reference(reader.records, ref)
    assert dmpflow.stop(proc) == 0
