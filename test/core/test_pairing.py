"""pairing: approximate-time pairing with message_filters semantics plus drop counters."""
import itertools
import json
import math

import numpy as np
import pytest

from efficientmfd_ros.core.pairing import ApproximatePairer, Pair, s_to_stamp, stamp_to_s


def _balance(pairer):
    """Per input: received - (pairs + evicted + unmatched + pending), which must be 0."""
    s, pending = pairer.stats, pairer.pending()
    return [s.received[i] - (s.pairs + s.evicted[i] + s.unmatched[i] + pending[i])
            for i in range(pairer.num_inputs)]


@pytest.mark.parametrize('kwargs', [
    dict(num_inputs=1), dict(num_inputs=2.0), dict(queue_size=0), dict(queue_size=True),
    dict(slop_s=0.0), dict(slop_s=-0.1), dict(slop_s=math.nan), dict(slop_s=math.inf),
    dict(max_backwards_s=0.0), dict(max_backwards_s='1'), dict(match_wait_s=-0.1),
    dict(match_wait_s=math.inf), dict(match_wait_s=True),
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ApproximatePairer(**kwargs)


@pytest.mark.parametrize('index, stamp', [(2, 1.0), (-1, 1.0), (True, 1.0), (0, math.nan),
                                          (0, math.inf), (0, '1.0')])
def test_bad_add_raises(index, stamp):
    with pytest.raises(ValueError):
        ApproximatePairer().add(index, stamp, None)


def test_stamp_helpers_round_trip():
    assert stamp_to_s(12, 500_000_000) == pytest.approx(12.5)
    assert s_to_stamp(12.5) == (12, 500_000_000)
    assert s_to_stamp(-0.25) == (-1, 750_000_000)
    sec, nanosec = s_to_stamp(stamp_to_s(1_700_000_000, 123_456_789))
    assert sec == 1_700_000_000 and abs(nanosec - 123_456_789) < 1000  # float64 keeps ~0.24 us


def test_basic_pair_and_strict_slop():
    pairer = ApproximatePairer(slop_s=0.05)
    assert pairer.add(0, 1.0, 'rgb') == []
    [pair] = pairer.add(1, 1.02, 'ir')
    assert isinstance(pair, Pair)
    assert pair.items == ('rgb', 'ir') and pair.stamps == (1.0, 1.02)
    assert pair.spread_s == pytest.approx(0.02)
    assert pairer.pending() == [0, 0]
    assert pairer.add(0, 2.0, 'a') == [] and pairer.add(1, 2.05, 'b') == []  # spread == slop
    assert pairer.pending() == [1, 1]


def test_nearest_candidate_wins_and_older_stays():
    pairer = ApproximatePairer(slop_s=0.05)
    pairer.add(0, 1.00, 'old')
    pairer.add(0, 1.03, 'near')
    [pair] = pairer.add(1, 1.025, 'ir')
    assert pair.items == ('near', 'ir')
    assert pairer.pending() == [1, 0]
    [pair] = pairer.add(1, 0.99, 'late')  # a slightly earlier stamp may still pair with the rest
    assert pair.items == ('old', 'late')


def _jittered(rate_hz, duration_s, jitter_s, rng, start=100.0):
    n = int(duration_s * rate_hz)
    return start + np.arange(n) / rate_hz + rng.uniform(-jitter_s, jitter_s, n)


def _feed(pairer, events):
    """events: (arrival, input, stamp); returns all pairs in arrival order."""
    pairs = []
    for _, index, stamp in sorted(events):
        pairs += pairer.add(index, float(stamp), (index, float(stamp)))
    return pairs


@pytest.mark.parametrize('thermal_latency_s', [0.0, 0.04])
def test_30hz_and_9hz_streams(rng, thermal_latency_s):
    rgb = _jittered(30, 6, 0.002, rng)
    ir = _jittered(9, 6, 0.002, rng)
    events = [(s + 0.005, 0, s) for s in rgb] + [(s + thermal_latency_s, 1, s) for s in ir]
    pairer = ApproximatePairer(queue_size=10, slop_s=0.05)
    pairs = _feed(pairer, events)
    assert len(pairs) == len(ir)
    assert all(p.spread_s < 0.05 for p in pairs)
    for pair in pairs:
        if thermal_latency_s:  # the nearest RGB frame has arrived before the thermal one
            expected = rgb[np.argmin(np.abs(rgb - pair.stamps[1]))]
        else:  # only RGB frames already received are candidates, else the next one to arrive
            earlier = rgb[rgb + 0.005 <= pair.stamps[1]]
            earlier = earlier[pair.stamps[1] - earlier <= 0.05]
            expected = earlier.max() if earlier.size else rgb[rgb + 0.005 > pair.stamps[1]].min()
        assert pair.stamps[0] == expected
    assert pairer.stats.pairs == len(ir) and pairer.stats.resets == 0
    assert pairer.stats.evicted[0] > 0 and pairer.stats.evicted[1] == 0
    pairer.flush()
    assert pairer.pending() == [0, 0] and _balance(pairer) == [0, 0]


def test_missing_modality_counts_evictions_then_recovers():
    pairer = ApproximatePairer(queue_size=10, slop_s=0.05)
    for k in range(100):
        assert pairer.add(0, 10.0 + k / 30, k) == []
    assert pairer.pending() == [10, 0]
    assert pairer.stats.evicted == [90, 0] and pairer.stats.pairs == 0
    [pair] = pairer.add(1, 10.0 + 99 / 30 + 0.001, 'ir')
    assert pair.items == (99, 'ir')
    assert _balance(pairer) == [0, 0]


def test_burst_larger_than_queue():
    pairer = ApproximatePairer(queue_size=10, slop_s=0.05)
    stamps = [5.0 + 0.001 * k for k in range(25)]
    for k, stamp in enumerate(stamps):
        pairer.add(0, stamp, k)
    assert pairer.stats.evicted[0] == 15 and pairer.pending() == [10, 0]
    [pair] = pairer.add(1, 5.0, 'ir')  # nearest survivor is the oldest one kept
    assert pair.items == (15, 'ir')
    assert _balance(pairer) == [0, 0]


def test_out_of_order_within_tolerance_is_accepted():
    pairer = ApproximatePairer(slop_s=0.05, max_backwards_s=1.0)
    for stamp in (1.00, 1.20, 1.10, 0.90):
        pairer.add(0, stamp, stamp)
    assert pairer.stats.resets == 0 and pairer.pending() == [4, 0]
    [pair] = pairer.add(1, 1.101, 'ir')
    assert pair.items == (1.10, 'ir')


def test_backwards_jump_resets_queues():
    pairer = ApproximatePairer(slop_s=0.05, max_backwards_s=1.0)
    for k in range(5):
        pairer.add(0, 50.0 + k * 0.1, k)
    pairer.add(1, 50.25, 'unpaired')
    assert pairer.pending() == [5, 1]
    assert pairer.add(0, 0.0, 'looped') == []  # the bag started over
    assert pairer.stats.resets == 1
    assert pairer.stats.unmatched == [5, 1] and pairer.pending() == [1, 0]
    [pair] = pairer.add(1, 0.01, 'ir')  # input 1 follows the loop without a second reset
    assert pair.items == ('looped', 'ir') and pairer.stats.resets == 1
    assert _balance(pairer) == [0, 0]


def test_duplicate_stamp_replaces_and_is_counted():
    pairer = ApproximatePairer()
    pairer.add(0, 1.0, 'first')
    pairer.add(0, 1.0, 'second')
    assert pairer.stats.duplicates == [1, 0] and pairer.stats.unmatched == [1, 0]
    [pair] = pairer.add(1, 1.0, 'ir')
    assert pair.items == ('second', 'ir') and pair.spread_s == 0.0
    assert _balance(pairer) == [0, 0]


def test_late_newcomer_older_than_a_full_queue_is_evicted():
    pairer = ApproximatePairer(queue_size=2, slop_s=0.05)
    pairer.add(1, 0.5, 'ir')
    pairer.add(0, 1.0, 'a')
    pairer.add(0, 1.1, 'b')
    assert pairer.add(0, 0.5, 'late') == []
    assert pairer.stats.evicted == [1, 0] and pairer.pending() == [2, 1]


def test_three_inputs_try_combinations_nearest_first():
    pairer = ApproximatePairer(num_inputs=3, slop_s=0.05)
    pairer.add(0, 1.02, 'a0')
    pairer.add(0, 1.085, 'a1')
    pairer.add(1, 1.08, 'b')
    [pair] = pairer.add(2, 1.05, 'c')  # (1.02, 1.08) spreads 0.06; (1.085, 1.08) fits
    assert pair.items == ('a1', 'b', 'c')
    assert pairer.add(2, 1.2, 'lonely') == [] and pairer.pending() == [1, 0, 1]


def test_snapshot_is_plain_and_detached():
    pairer = ApproximatePairer()
    pairer.add(0, 1.0, None)
    snap = pairer.snapshot()
    json.dumps(snap)
    assert snap['received'] == [1, 0] and snap['pending'] == [1, 0]
    snap['received'][0] = 42
    assert pairer.stats.received == [1, 0]
    assert pairer.stats.snapshot()['pairs'] == 0


def _upstream_reference(events, num_inputs, queue_size, slop_ns):
    """A literal transcription of the message_filters Python algorithm, in integer ns."""
    queues, out = [{} for _ in range(num_inputs)], []
    for index, stamp, item in events:
        queue = queues[index]
        queue[stamp] = item
        while len(queue) > queue_size:
            del queue[min(queue)]
        lists = []
        for other in [q for i, q in enumerate(queues) if i != index]:
            near = sorted((s for s in other if abs(s - stamp) <= slop_ns),
                          key=lambda s: abs(s - stamp))
            lists.append(near)
        if not all(lists):
            continue
        for combo in itertools.product(*lists):
            vv = list(combo)
            vv.insert(index, stamp)
            if max(vv) - min(vv) < slop_ns and all(t in q for q, t in zip(queues, vv)):
                out.append(tuple(q.pop(t) for q, t in zip(queues, vv)))
                break
    return out


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('num_inputs', [2, 3])
def test_random_streams_keep_invariants(seed, num_inputs):
    rng = np.random.default_rng(seed)
    queue_size, slop_s = int(rng.integers(1, 8)), float(rng.uniform(0.01, 0.08))
    pairer = ApproximatePairer(num_inputs, queue_size, slop_s, max_backwards_s=0.5)
    plain = ApproximatePairer(num_inputs, queue_size, slop_s, max_backwards_s=math.inf)
    events, clock = [], [0.0] * num_inputs
    for n in range(400):
        index = int(rng.integers(num_inputs))
        clock[index] += float(rng.exponential(0.03))
        stamp = round(clock[index] + float(rng.normal(0, 0.01)), 3)  # rounding makes duplicates
        if rng.random() < 0.01:
            stamp -= 2.0  # a jump far backwards
        events.append((index, stamp, (index, n)))
    seen, pairs, plain_pairs = set(), [], []
    for index, stamp, item in events:
        new = pairer.add(index, stamp, item)
        assert len(new) <= 1
        pairs += new
        plain_pairs += plain.add(index, stamp, item)
        assert _balance(pairer) == [0] * num_inputs
        assert all(p <= queue_size for p in pairer.pending())
    for pair in pairs:
        assert pair.spread_s < slop_s
        assert [i for i, _ in pair.items] == list(range(num_inputs))
        assert not seen & set(pair.items)
        seen |= set(pair.items)
    reference = _upstream_reference([(i, round(s * 1e9), it) for i, s, it in events],
                                    num_inputs, queue_size, round(slop_s * 1e9))
    assert [p.items for p in plain_pairs] == reference
    pairer.flush()
    assert pairer.pending() == [0] * num_inputs and _balance(pairer) == [0] * num_inputs


def _stamps_of(pairer, events):
    out = []
    for index, stamp in events:
        out += [p.stamps for p in pairer.add(index, stamp, (index, stamp))]
    return out


# thermal (input 1) at -12 ms, then RGB at 0, then a closer thermal at +4 ms; then 30 Hz on
EVENTS = [(1, -0.012), (0, 0.0), (1, 0.004), (0, 0.033), (1, 0.037), (0, 0.066), (1, 0.070)]


def test_greedy_pairs_the_first_partner_and_match_wait_the_closer_one():
    assert _stamps_of(ApproximatePairer(slop_s=0.02), EVENTS)[0] == (0.0, -0.012)
    waiting = ApproximatePairer(slop_s=0.02, match_wait_s=0.1)
    got = []
    for n, (index, stamp) in enumerate(EVENTS):
        new = _stamps_of(waiting, [(index, stamp)])
        got += new
        if new == [(0.0, 0.004)]:
            # released once both streams moved past 0.004 + its 4 ms spread
            assert EVENTS[n] == (1, 0.037)
    assert got[:2] == [(0.0, 0.004), (0.033, 0.037)]
    assert waiting.stats.unmatched[1] == 1  # the -12 ms thermal frame lost to the closer one
    assert _balance(waiting) == [0, 0]


def test_match_wait_bound_releases_a_pair_when_the_partner_stream_stops():
    waiting = ApproximatePairer(slop_s=0.02, match_wait_s=0.05)
    events = [(0, 0.0), (1, 0.005), (0, 0.033), (0, 0.066), (0, 0.1)]
    released = [n for n in range(len(events))
                if _stamps_of(waiting, [events[n]])]
    assert released == [3]  # rgb 0.066 is 61 ms past the pair's newest stamp (0.005) >= 50 ms
    assert _balance(waiting) == [0, 0]


@pytest.mark.parametrize('seed', range(4))
def test_match_wait_random_streams_keep_invariants_and_never_widen_pairs(seed):
    rng = np.random.default_rng(seed)
    pairer = ApproximatePairer(2, 6, 0.03, max_backwards_s=0.5, match_wait_s=0.06)
    greedy = ApproximatePairer(2, 6, 0.03, max_backwards_s=0.5)
    clock, spreads, greedy_spreads, seen = [0.0, 0.005], [], [], set()
    for n in range(400):
        index = int(rng.integers(2))
        clock[index] += float(rng.exponential(0.03))
        stamp = round(clock[index] + float(rng.normal(0, 0.008)), 4)
        for pair in pairer.add(index, stamp, (index, n)):
            assert pair.spread_s < 0.03 and not seen & set(pair.items)
            seen |= set(pair.items)
            spreads.append(pair.spread_s)
        greedy_spreads += [p.spread_s for p in greedy.add(index, stamp, (index, n))]
        assert _balance(pairer) == [0, 0]
    assert np.mean(spreads) <= np.mean(greedy_spreads)
