#!/usr/bin/env python3
"""Interleaved A/B runs of dmpflow builds, end to end on one topic.

This machine's speed drifts by up to 2x over minutes (a shared VM), so two
builds measured one after the other in separate `make bench` runs cannot be
compared. This pre-loads one topic (bench/run.py's input) once, warms the
broker, then runs the variants in turn, round after round, each with a
fresh consumer group, state and output topic, and prints events/s, CPU s,
peak RSS and broker CPU s per run plus the median per variant.

A variant is NAME=BINARY[:SECTION.KEY=VALUE,...], e.g.

    bench/ab.py --events 10000000 --rounds 3 \\
        old=/tmp/old/build/dmpflow new=build/dmpflow \\
        'wait100=build/dmpflow:kafka.fetch.wait.max.ms=100'

With --latency-rate R, each run is instead bench/run.py's latency
measurement at R events/s (1 s windows; p50 / p99 of final results, and
p99 after the first window), and the input topic is the generator's.
With --startup, each run is bench/run.py's startup measurement (process
start to the first result, on a topic of 100 events of one key).

Run it with bench/prepare's Python (it needs confluent-kafka and fastavro):
`$(bench/prepare) bench/ab.py ...`. --topic reuses a topic an earlier run
left (--keep keeps it).
"""
import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as B  # noqa: E402


def parse_variant(text: str) -> tuple[str, Path, list[str]]:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=BINARY[:SECTION.KEY=VALUE,...]")
    binary, _, sets = rest.partition(":")
    return name, Path(binary), [s for s in sets.split(",") if s]


def run_rounds(a, measure_one, fields: tuple[str, ...]) -> dict[str, list[dict]]:
    """Every variant in turn, a.rounds times; prints each run as a JSON line."""
    runs: dict[str, list[dict]] = {v[0]: [] for v in a.variants}
    for rnd in range(a.rounds):
        for name, binary, sets in a.variants:
            r = measure_one(name, binary, sets, f"r{rnd}")
            runs[name].append(r)
            print(json.dumps({"variant": name, "round": rnd,
                              **{k: r.get(k) for k in fields}}), flush=True)
    return runs


def summarize(runs: dict[str, list[dict]], header: str, line) -> None:
    """A line per variant: line(runs without error), or its first error."""
    print("\nvariant     " + header)
    for name, rs in runs.items():
        ok = [r for r in rs if not r.get("error")]
        print(f"{name:12}  " + (line(ok) if ok else f"all runs failed: {rs[0].get('error')}"))


def e2e_line(ok: list[dict]) -> str:
    eps = sorted(r["events_per_s"] for r in ok)

    def med(k):
        return statistics.median(r[k] for r in ok if r.get(k) is not None)
    return (f"{statistics.median(eps):>10,.0f} ({', '.join(f'{x:,.0f}' for x in eps)})"
            f"  {med('cpu_s'):8.2f}  {med('rss_mb'):8.1f}  {med('broker_cpu_s'):8.2f}")


def latency_line(ok: list[dict]) -> str:
    p99 = sorted(r["p99_ms"] for r in ok)
    st = sorted(r["steady_p99_ms"] for r in ok)
    return (f"{statistics.median(r['p50_ms'] for r in ok):6}   "
            f"{statistics.median(p99):6} {p99}   {statistics.median(st):6} {st}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup-passes", type=int, default=3)
    ap.add_argument("--topic", help="an input topic already loaded (skips the pre-load)")
    ap.add_argument("--keep", action="store_true", help="keep the input topic")
    ap.add_argument("--latency-rate", type=int,
                    help="latency runs at this input rate instead of end-to-end runs")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--startup", action="store_true",
                    help="startup runs (first result) instead of end-to-end runs")
    ap.add_argument("variants", nargs="+", type=parse_variant)
    a = ap.parse_args()
    args = B.parse_args(["--engines", "dmpflow", "--events", str(a.events)])
    broker = B.Broker(None)
    kafka = B.Kafka(broker.bootstrap)

    def new_run(name: str, binary: Path, sets: list[str]) -> B.Run:
        args.dmpflow, args.dmpflow_set = binary, sets
        return B.Run(args, kafka, Path(tempfile.mkdtemp(prefix=f"dmpflow-ab-{name}-")))

    if a.latency_rate:
        def latency_one(name: str, binary: Path, sets: list[str], tag: str) -> dict:
            r = new_run(name, binary, sets)
            res = B.measure_latency(r, a.latency_rate, a.latency_seconds)
            kafka.delete_matching(r.topic(f"lat{a.latency_rate}-"))
            return res
        try:
            runs = run_rounds(a, latency_one, ("achieved_rate", "p50_ms", "p99_ms",
                                               "steady_p99_ms", "max_ms", "error"))
            summarize(runs, "  p50 ms   p99 ms (runs)            p99 after the first window (runs)",
                      latency_line)
        finally:
            broker.close()
        return 0

    base = B.Run(args, kafka, Path(tempfile.mkdtemp(prefix="dmpflow-ab-")))
    if a.startup:
        st_topic = base.topic("startup-in")
        B.preload(base, st_topic, 100, 1, 1000, 0.0, end_events=False)

        def startup_one(name: str, binary: Path, sets: list[str], tag: str) -> dict:
            r = new_run(name, binary, sets)
            res = B.measure_startup(r, "dmpflow", st_topic)
            kafka.delete_matching(r.topic("startup0-out-"))  # not r.prefix: it may be the input's
            return res
        try:
            runs = run_rounds(a, startup_one, ("startup_ms", "error"))
            summarize(runs, "  first result ms (median, runs)", lambda ok: (
                f"{statistics.median(r['startup_ms'] for r in ok):8.1f} "
                f"({', '.join(str(r['startup_ms']) for r in ok)})"))
        finally:
            kafka.delete_matching(base.prefix)
            broker.close()
        return 0

    topic = a.topic
    if not topic:
        topic = base.topic("in")
        B.preload(base, topic, args.events, args.keys, args.step_ms, args.ooo)
    B.log(f"input topic {topic}")

    def e2e_one(name: str, binary: Path, sets: list[str], tag: str) -> dict:
        r = new_run(name, binary, sets)
        res = B.measure(r, "dmpflow", topic, args.events, None, broker, tag=f"{name}-{tag}")
        kafka.delete_matching(res["output_topic"])  # not r.prefix: it may be the input's
        return res

    try:
        name0, bin0, sets0 = a.variants[0]
        for i in range(a.warmup_passes):
            w = e2e_one(name0, bin0, sets0, f"warmup{i + 1}")
            B.log(f"warm-up {i + 1}: broker CPU {w.get('broker_cpu_s')} s")
        runs = run_rounds(a, e2e_one, ("events_per_s", "cpu_s", "rss_mb", "broker_cpu_s",
                                       "results", "error"))
        summarize(runs, "  events/s (median, runs)             CPU s       RSS MB   broker CPU s",
                  e2e_line)
    finally:
        if not a.keep and not a.topic:
            kafka.delete_matching(base.prefix)
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
