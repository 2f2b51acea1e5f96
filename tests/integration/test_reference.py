"""Self-test of the reference implementation on hand-computed examples.

These need neither a broker nor the binary.
"""

import math

import pytest

from reference import Measure, Window, compute, stats_of

V = Measure.parse("v", "1*v")


def ev(t, **fields):
    return {"ts": t, **fields}


def run(events, windows, measures=(V,), idle_end=False):
    return compute(events, windows, list(measures), idle_end=idle_end)


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
        "mean": 2.0, "stddev": 1.0, "late": 0, "final": True,
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


# ---- issue 4: late counts, sessions, sliding windows, idle end (by hand) ----


def test_late_count_goes_to_the_keys_next_result():
    w = Window("tw", "tumbling", 10, grace_ms=0)
    evs = [(100, 1), (115, 2),  # [100,110) emitted at st=115 (late 0)
           (101, 3), (102, 4),  # both late for key a: pending 2
           (125, 5)]            # [110,120) emitted at st=125 with late 2
    ref = run([(0, "a", ev(t, v=v)) for t, v in evs], [w])
    assert ref.results[("tw", "a", 100, "v")]["late"] == 0
    assert ref.results[("tw", "a", 110, "v")]["late"] == 2
    assert ref.late_by_window == {"tw": 2}
    assert ref.late_positions == {(0, 2): ["tw"], (0, 3): ["tw"]}
    # idle end closes [120,130) too
    ref = run([(0, "a", ev(t, v=v)) for t, v in evs], [w], idle_end=True)
    assert ref.results[("tw", "a", 120, "v")]["count"] == 1


def test_sessions_merge_extend_close_and_late():
    w = Window("s", "session", gap_ms=10, grace_ms=5)
    evs = [(100, 1),  # session A [100,100]
           (125, 2),  # 125 - 100 > 10: session B [125,125]; A closes at 100+1+10+5=116 <= 125: emitted
           (133, 3),  # within 10 of B: B = [125,133]
           (140, 4),  # B = [125,140]
           (112, 9),  # finds nothing (B starts at 125 > 122): 112 < 140 - 10 - 5 -> late
           (160, 5),  # new session C [160,160]; B closes at 140+16=156 <= 160: emitted
           (150, 6),  # within 10 of C: C = [150,160]; 160 + 5 >= 160: not late
           (177, 7)]  # C closes at 160+16=176 <= 177: emitted; D [177,177] open
    ref = run([(0, "k", ev(t, v=v)) for t, v in evs], [w])
    got = {(k[2], r["end"]): (r["count"], r["sum"], r["late"]) for k, r in ref.results.items()}
    # the late event (t=112) came while B was open: B is the key's next result
    assert got == {(100, 101): (1, 1.0, 0), (125, 141): (3, 9.0, 1), (150, 161): (2, 11.0, 0)}
    assert ref.late_by_window == {"s": 1}


def test_session_bridge_merges_two_sessions():
    w = Window("s", "session", gap_ms=10, grace_ms=100)
    evs = [(100, 1), (130, 2), (115, 3)]  # 115 is within 10 of 100? no (15); within 10 of 130? no
    ref = run([(0, "k", ev(t, v=v)) for t, v in evs], [w], idle_end=True)
    assert sorted((k[2], r["count"]) for k, r in ref.results.items()) == [(100, 1), (115, 1), (130, 1)]
    evs = [(100, 1), (120, 2), (110, 3)]  # 110 bridges [100] and [120] (gap 10 inclusive)
    ref = run([(0, "k", ev(t, v=v)) for t, v in evs], [w], idle_end=True)
    assert [(k[2], r["end"], r["count"], r["sum"]) for k, r in ref.results.items()] == [(100, 121, 3, 6.0)]


def test_sliding_windows_by_hand():
    w = Window("sl", "sliding", size_ms=10, grace_ms=0)  # windows [s, s+10] inclusive
    evs = [(100, 1), (105, 2), (130, 4)]
    ref = run([(0, "k", ev(t, v=v)) for t, v in evs], [w], idle_end=True)
    got = {(k[2], r["end"]): (r["count"], r["sum"]) for k, r in ref.results.items()}
    # left windows [90,100], [95,105], [120,130]; right windows [101,111] (has 105),
    # [106,116] (empty), [131,141] (empty)
    assert got == {(90, 101): (1, 1.0), (95, 106): (2, 3.0), (101, 112): (1, 2.0),
                   (120, 131): (1, 4.0)}


def test_sliding_late_and_left_window_closed_on_arrival():
    w = Window("sl", "sliding", size_ms=10, grace_ms=2)
    evs = [(100, 1), (125, 2),  # [90,100] closes at 90+11+2=103 <= 125: emitted
           (105, 3),            # left [95,105] closes at 108 <= 125: not a candidate;
                                # 105+11+2=118 <= 125 -> late as a whole
           (118, 4)]            # 118+13=131 > 125: accepted; left [108,118] closes 121 <= 125: no
    ref = run([(0, "k", ev(t, v=v)) for t, v in evs], [w], idle_end=True)
    got = {(k[2], r["end"]): (r["count"], r["sum"], r["late"]) for k, r in ref.results.items()}
    assert ref.late_by_window == {"sl": 1}
    # [90,100]: 1; [101,111] has no record; [115,125]: 125 -> left of 125; 118 arrived when
    # [115,125] (closes 128) was open -> 2+4; [119,129] right of 118: {125}; [126,136]: empty
    assert got == {(90, 101): (1, 1.0, 0), (115, 126): (2, 6.0, 1), (119, 130): (1, 2.0, 0)}


def test_session_lateness_on_merged_end_plus_gap_plus_grace():
    """docs/WINDOWS.md, sessions: 113 at stream time 125 is not late (113 <
    125 - 10 - 2 is false) and makes a session of its own."""
    w = Window("s", "session", gap_ms=10, grace_ms=2)
    ref = run([(0, "k", ev(125, v=1)), (0, "k", ev(113, v=2))], [w], idle_end=True)
    assert {(k[2], r["end"]): r["count"] for k, r in ref.results.items()} == {(113, 114): 1, (125, 126): 1}
    assert ref.late_events == 0
    late = run([(0, "k", ev(125, v=1)), (0, "k", ev(112, v=2))], [w], idle_end=True)
    assert late.late_events == 1 and late.late_pairs["s"] == 1


def test_session_store_blind_millisecond():
    """At st 61 (gap 10, grace 5) an open session ending at 46 is not found:
    an event at 50 starts another session."""
    w = Window("s", "session", gap_ms=10, grace_ms=5)
    ref = run([(0, "z", ev(61, v=1)), (0, "p", ev(46, v=2)), (0, "p", ev(50, v=3))], [w], idle_end=True)
    got = {(k[1], k[2], r["end"]): r["count"] for k, r in ref.results.items()}
    assert got == {("z", 61, 62): 1, ("p", 46, 47): 1, ("p", 50, 51): 1}


@pytest.mark.parametrize("events,expected,late_events,late_pairs", [
    # worked example 1: c at 110 is in no window; [111, 121] = {b} is never made
    ([(122, 1), (113, 2), (110, 4)], {(112, 123): (2, 3.0), (114, 125): (1, 1.0)}, 1, 2),
    # worked example 2: b is missing from c's left window [95, 105]
    ([(107, 1), (100, 2), (105, 4)],
     {(95, 106): (1, 4.0), (97, 108): (3, 7.0), (101, 112): (2, 5.0), (106, 117): (1, 1.0)}, 0, 1),
])
def test_sliding_kafka_streams_worked_examples(events, expected, late_events, late_pairs):
    """docs/WINDOWS.md, sliding windows, D = 10, grace 2."""
    w = Window("sl", "sliding", size_ms=10, grace_ms=2)
    ref = run([(0, "k", ev(t, v=v)) for t, v in events], [w], idle_end=True)
    assert {(k[2], r["end"]): (r["count"], r["sum"]) for k, r in ref.results.items()} == expected
    assert ref.late_events == late_events and ref.late_pairs["sl"] == late_pairs
