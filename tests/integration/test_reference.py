"""Self-test of the reference implementation on hand-computed examples.

These need neither a broker nor the binary.
"""

import math

import pytest

from reference import Measure, Window, compute, stats_of

V = Measure.parse("v", "1*v")


def ev(t, **fields):
    return {"ts": t, **fields}


def run(events, windows, measures=(V,)):
    return compute(events, windows, list(measures))


def test_measure_parse_and_value():
    m = Measure.parse("score", "0.7*price + 0.3*quantity")
    assert m.terms == ((0.7, "price"), (0.3, "quantity"))
    assert m.value({"price": 10.0, "quantity": 20}) == 0.7 * 10.0 + 0.3 * 20
    assert Measure.parse("c", "1*clicks").terms == ((1.0, "clicks"),)
    assert Measure.parse("d", "-2*x + y - .5*z").terms == ((-2.0, "x"), (1.0, "y"), (-0.5, "z"))
    assert m.value({"price": 1.0, "quantity": None}) is None
    assert m.value({"price": 1.0}) is None
    with pytest.raises(ValueError):
        Measure.parse("bad", "0.7*price 0.3*quantity")


def test_stats_two_pass():
    s = stats_of([2, 4, 4, 4, 5, 5, 7, 9])
    assert s == {"count": 8, "sum": 40, "min": 2, "max": 9, "mean": 5.0, "stddev": 2.0}
    assert stats_of([3.5])["stddev"] == 0.0


def test_window_starts():
    t = Window("t", "tumbling", 10)
    assert t.starts(100) == [100]
    assert t.starts(109) == [100]
    assert t.starts(110) == [110]
    h = Window("h", "hopping", 10, advance_ms=5)
    assert h.starts(104) == [95, 100]
    assert h.starts(105) == [100, 105]
    assert h.starts(109) == [100, 105]
    h3 = Window("h3", "hopping", 30, advance_ms=10)
    assert h3.starts(125) == [100, 110, 120]


TUMBLING_EVENTS = [
    # t,   v      stream time after   effect
    (103, 1),  # 103   [100,110) += 1
    (111, 2),  # 111   [110,120) += 2
    (109, 3),  # 111   [100,110) still open (111 < 110+2)  += 3
    (112, 4),  # 112   [110,120) += 4; [100,110) now closed (112 >= 112)
    (108, 5),  # 112   [100,110) closed -> late, dropped
    (119, 6),  # 119   [110,120) += 6
]


def test_tumbling_late_and_exact_grace_boundary():
    w = Window("tw", "tumbling", 10, grace_ms=2)
    ref = run([(0, "a", ev(t, v=v)) for t, v in TUMBLING_EVENTS], [w])
    assert ref.late_pairs == {"tw": 1}
    assert ref.late_events == 1
    assert ref.stream_time == {0: 119}
    # [110,120) closes at 122 > 119: no result yet
    assert list(ref.results) == [("tw", "a", 100, "v")]
    r = ref.results[("tw", "a", 100, "v")]
    assert r == {
        "window": "tw", "kind": "tumbling", "key": "a", "start": 100, "end": 110,
        "measure": "v", "count": 2, "sum": 4.0, "min": 1.0, "max": 3.0,
        "mean": 2.0, "stddev": 1.0,
    }


def test_tumbling_closed_exactly_at_final_stream_time():
    w = Window("tw", "tumbling", 10, grace_ms=2)
    events = [(0, "a", ev(t, v=v)) for t, v in TUMBLING_EVENTS + [(122, 7)]]
    ref = run(events, [w])
    # final stream time 122 == 120 + 2: [110,120) is closed and emitted
    assert sorted(ref.results) == [("tw", "a", 100, "v"), ("tw", "a", 110, "v")]
    r = ref.results[("tw", "a", 110, "v")]
    assert (r["count"], r["sum"], r["min"], r["max"], r["mean"]) == (3, 12.0, 2.0, 6.0, 4.0)
    assert math.isclose(r["stddev"], math.sqrt(8 / 3), rel_tol=1e-15)
    assert ref.open_at_end == 1  # [120,130)


def test_hopping_overlaps():
    w = Window("hw", "hopping", 10, grace_ms=1, advance_ms=5)
    events = [
        (101, 1),  # st 101: [95,105) [100,110)
        (107, 2),  # st 107: [100,110) [105,115)
        (112, 3),  # st 112: [105,115) [110,120); [95,105) closed@106, [100,110) closed@111
        (106, 4),  # st 112: [100,110) late; [105,115) (closes@116) += 4
        (116, 5),  # st 116: [110,120) [115,125); [105,115) closes now
    ]
    ref = run([(0, "k", ev(t, v=v)) for t, v in events], [w])
    assert ref.late_pairs == {"hw": 1}
    assert ref.late_events == 0
    got = {k[2]: (r["count"], r["sum"], r["mean"], r["min"], r["max"]) for k, r in ref.results.items()}
    assert got == {
        95: (1, 1.0, 1.0, 1.0, 1.0),
        100: (2, 3.0, 1.5, 1.0, 2.0),
        105: (3, 9.0, 3.0, 2.0, 4.0),
    }
    assert ref.results[("hw", "k", 95, "v")]["stddev"] == 0.0
    assert ref.results[("hw", "k", 100, "v")]["stddev"] == 0.5
    assert math.isclose(ref.results[("hw", "k", 105, "v")]["stddev"], math.sqrt(2 / 3))
    assert all(r["end"] == r["start"] + 10 and r["kind"] == "hopping" for r in ref.results.values())


def test_null_measure():
    score = Measure.parse("score", "2*price + 1*quantity")
    clicks = Measure.parse("clicks", "1*clicks")
    w = Window("tw", "tumbling", 10, grace_ms=0)
    events = [
        ev(100, price=1.5, quantity=2, clicks=None),  # score 5
        ev(105, price=0.5, quantity=1, clicks=3),     # score 2, clicks 3
        ev(112, price=1.0, quantity=0, clicks=None),  # score 2 in [110,120)
        ev(120, price=0.0, quantity=0, clicks=None),  # closes [110,120) exactly
    ]
    ref = run([(0, "u", e) for e in events], [w], [score, clicks])
    assert ref.undefined == {"score": 0, "clicks": 3}
    assert sorted(ref.results) == [
        ("tw", "u", 100, "clicks"),
        ("tw", "u", 100, "score"),
        ("tw", "u", 110, "score"),  # no clicks result: count would be 0
    ]
    s = ref.results[("tw", "u", 100, "score")]
    assert (s["count"], s["sum"], s["mean"], s["stddev"], s["min"], s["max"]) == (2, 7.0, 3.5, 1.5, 2.0, 5.0)
    c = ref.results[("tw", "u", 100, "clicks")]
    assert (c["count"], c["sum"], c["stddev"]) == (1, 3.0, 0.0)


def test_window_measure_subset():
    a = Measure.parse("a", "1*v")
    b = Measure.parse("b", "2*v")
    w = Window("tw", "tumbling", 10, measures=("b",))
    ref = run([(0, "k", ev(100, v=1)), (0, "k", ev(110, v=1))], [w], [a, b])
    assert list(ref.results) == [("tw", "k", 100, "b")]
    assert ref.results[("tw", "k", 100, "b")]["sum"] == 2.0


def test_partitions_have_independent_stream_time():
    w = Window("tw", "tumbling", 10, grace_ms=0)
    events = [
        (0, "a", ev(100, v=1)),
        (1, "b", ev(500, v=1)),   # advances only partition 1
        (0, "a", ev(105, v=2)),   # not late: partition 0's stream time is 100
        (1, "b", ev(101, v=9)),   # late on partition 1
    ]
    ref = run(events, [w])
    assert ref.stream_time == {0: 105, 1: 500}
    assert ref.late_pairs == {"tw": 1}
    # partition 0's [100,110) never closed; partition 1's [500,510) never closed
    assert ref.results == {}
    ref = run(events + [(0, "a", ev(110, v=0))], [w])
    assert list(ref.results) == [("tw", "a", 100, "v")]
    assert ref.results[("tw", "a", 100, "v")]["sum"] == 3.0
