"""Schema evolution end to end ([input] reader.schema): events written with
tests/schemas/evolution/writer_v1.avsc (by fastavro) are read through
reader_pipeline.avsc, which drops fields, promotes float and int to double
and adds `bonus` with a default; the results must equal the Python
reference computed on the events as the reader sees them. An incompatible
reader schema is a configuration error naming the field and the rule."""

from __future__ import annotations

import io
import json
import random
import struct

import fastavro

from reference import Measure, Window, compute
from support import REPO, _strip_logical, assert_matches_reference, make_config, make_events

PARTITIONS = 3
EVO = REPO / "tests" / "schemas" / "evolution"
WRITER = fastavro.parse_schema(_strip_logical(json.loads((EVO / "writer_v1.avsc").read_text())))

MEASURES = {
    "score": "0.7*price + 0.3*quantity",
    "clicks": "1*clicks",
    "total": "1*price + 1*bonus",  # bonus: the reader's default
}
WINDOWS = [Window("tumble10s", "tumbling", size_ms=10_000, grace_ms=2_000, measures=tuple(MEASURES))]


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_reader_schema_resolves_writer(kafka, dmpflow, tmp_path):
    rng = random.Random(3)
    events = make_events(8_000, 21, keys=40, step_ms=10, ooo=0.05, max_delay_ms=3_000, null_clicks=0.3)
    for ev in events:
        ev["price"] = f32(ev["price"])  # the writer stores a float
        ev.update(color=rng.choice(["RED", "GREEN", "BLUE"]),
                  info={"a": rng.randint(-5, 5), "b": "x" * rng.randint(0, 3)},
                  tags=["t"] * rng.randint(0, 2), legacy=rng.random())

    def encode(ev):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, WRITER, ev)
        return buf.getvalue()

    src = kafka.topic(PARTITIONS, "in")
    dst = kafka.topic(PARTITIONS, "out")
    produced = kafka.produce(src, events, PARTITIONS, encode=encode)
    # what the reader sees: bonus from its default
    ref = compute([(p, k, {**e, "bonus": 2.5}) for p, k, e in produced], WINDOWS,
                  [Measure.parse(n, x) for n, x in MEASURES.items()])
    assert ref.undefined["clicks"] > 0 and len(ref.results) > 100

    cfg = dmpflow.write_config(make_config(
        bootstrap=kafka.bootstrap, input_topic=src, output_topic=dst, state_dir=tmp_path / "state",
        group_id=f"{src}-g", measures=MEASURES, windows=WINDOWS, commit_interval_ms=200,
        schema=EVO / "writer_v1.avsc", reader_schema=EVO / "reader_pipeline.avsc"))
    reader = kafka.reader(dst)
    proc = dmpflow.start("run", "-c", cfg)
    reader.until(len(ref.results), timeout=60)
    assert proc.poll() is None, f"dmpflow exited early with code {proc.poll()}"
    assert dmpflow.stop(proc, timeout=10) == 0
    reader.drain(2.0)
    assert not reader.errors, reader.errors[:5]
    assert "decode errors; dead letters: none" in proc.stderr
    assert_matches_reference(reader.records, ref)


def test_incompatible_reader_schema_is_a_config_error(dmpflow, tmp_path):
    bad = json.loads((EVO / "reader_pipeline.avsc").read_text())
    for f in bad["fields"]:
        if f["name"] == "price":
            f["type"] = "string"
    bad_path = tmp_path / "bad_reader.avsc"
    bad_path.write_text(json.dumps(bad))
    text = make_config(bootstrap="127.0.0.1:1", input_topic="in", output_topic="out",
                       state_dir=tmp_path / "state", group_id="g", measures={"p": "1*price"},
                       windows=[Window("w", "tumbling", size_ms=1000, grace_ms=0, measures=("p",))],
                       schema=EVO / "writer_v1.avsc", reader_schema=bad_path)
    cfg = dmpflow.write_config(text)
    line = text.split("\n").index(f"schema = {EVO / 'writer_v1.avsc'}") + 1
    proc = dmpflow.run("check", "-c", cfg, timeout=15)
    err = proc.stderr
    assert proc.popen.returncode == 2, err
    assert f"{cfg}:{line}:" in err, err
    assert 'field "price": writer type float cannot be read as string' in err, err
