#!/usr/bin/env python3
"""The Quix Streams peer of dmpflow's benchmark.

It computes what config/dmpflow.conf computes:

  input:   raw Avro events (schemas/event.avsc), Kafka key = user_id
  time:    the event's ts field (event time, a timestamp extractor)
  measure: score = 0.7*price + 0.3*quantity
  window:  tumbling, size and grace from the command line, per key
  result:  count, sum, min, max, mean, once, when the window closes
           (final(); closing_strategy="partition": a partition's stream time
           closes the windows of all its keys, Kafka Streams' and dmpflow's
           rule: stream time >= end + grace), as an Avro WindowResult
           (schemas/window_result.avsc) keyed by the key; stddev is not
           computed (NaN).

Windows are grouped by the Kafka message key, which the producer (dmpflow
gen) sets to user_id.

Quix Streams processes a partition's records one at a time on one Python
thread; its documented way to use more cores is to run more instances of
the application in the same consumer group, which bench/run.py does
(--quix-instances, default: one per core).

Usage: window_agg.py --bootstrap HOST:PORT --input TOPIC --output TOPIC
         --group ID --state-dir DIR --event-schema FILE --result-schema FILE
         [--size-ms 60000] [--grace-ms 5000] [--commit-interval 5.0]
         [--agg builtin|reduce]

--agg builtin (default) uses Quix's built-in Count/Sum/Min/Max/Mean
aggregators; --agg reduce one Reduce over a [count, sum, min, max] list.
Requires: pip install quixstreams fastavro.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys

import fastavro
from quixstreams import Application
from quixstreams.dataframe.windows import aggregations as agg
from quixstreams.models.serializers.avro import AvroDeserializer

WINDOW_NAME = "per_minute"
MEASURE_NAME = "score"


def strip_logical_types(schema):
    """fastavro turns timestamp-millis into datetime; keep the raw long
    (the encoding is the same)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


def load_schema(path):
    with open(path) as f:
        return strip_logical_types(json.load(f))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--event-schema", required=True)
    ap.add_argument("--result-schema", required=True)
    ap.add_argument("--size-ms", type=int, default=60000)
    ap.add_argument("--grace-ms", type=int, default=5000)
    ap.add_argument("--commit-interval", type=float, default=5.0,
                    help="seconds between checkpoints (Quix's default: 5)")
    ap.add_argument("--agg", choices=("builtin", "reduce"), default="builtin")
    args = ap.parse_args(argv)

    result_schema = fastavro.parse_schema(load_schema(args.result_schema))

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=args.commit_interval,
        # Larger producer batches, as for the other engines.
        producer_extra_config={"linger.ms": 100, "batch.size": 262144,
                               "compression.type": "lz4"},
        consumer_extra_config={"fetch.min.bytes": 100000},
        loglevel="WARNING",
    )
    source = app.topic(
        args.input,
        key_deserializer="str",
        value_deserializer=AvroDeserializer(schema=load_schema(args.event_schema)),
        timestamp_extractor=lambda value, headers, timestamp, ts_type: value["ts"],
    )
    sink = app.topic(args.output, key_serializer="str", value_serializer="bytes")

    sdf = app.dataframe(source)
    sdf = sdf.apply(lambda ev: 0.7 * ev["price"] + 0.3 * ev["quantity"])
    win = sdf.tumbling_window(duration_ms=args.size_ms, grace_ms=args.grace_ms)
    if args.agg == "builtin":
        sdf = win.agg(count=agg.Count(), sum=agg.Sum(), min=agg.Min(), max=agg.Max(),
                      mean=agg.Mean()).final(closing_strategy="partition")

        def fields(w):
            return w["count"], w["sum"], w["min"], w["max"], w["mean"]
    else:
        def add(acc, v):
            acc[0] += 1
            acc[1] += v
            if v < acc[2]:
                acc[2] = v
            if v > acc[3]:
                acc[3] = v
            return acc

        sdf = win.agg(value=agg.Reduce(
            reducer=add,
            initializer=lambda v: [1, v, v, v],
        )).final(closing_strategy="partition")

        def fields(w):
            c, s, lo, hi = w["value"]
            return c, s, lo, hi, s / c

    def encode(w, key, timestamp, headers):
        count, total, lo, hi, mean = fields(w)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, result_schema, {
            "window": WINDOW_NAME, "kind": "tumbling", "key": key,
            "start": w["start"], "end": w["end"], "measure": MEASURE_NAME,
            "count": count, "sum": total, "min": lo, "max": hi, "mean": mean,
            "stddev": math.nan})
        return buf.getvalue()

    sdf = sdf.apply(encode, metadata=True)
    sdf.to_topic(sink)
    print(f"quix-bench: started group {args.group}", file=sys.stderr, flush=True)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
