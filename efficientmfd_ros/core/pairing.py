"""Approximate-time pairing of several stamped streams, ROS-free.

``ApproximatePairer`` follows the Python message_filters ``ApproximateTimeSynchronizer``: one queue
per input keyed by stamp, at most ``queue_size`` each (the oldest stamp is evicted), a match is
tried only when a message arrives and always contains it, candidates on the other inputs are those
within ``slop_s`` of it taken nearest first, and the first combination whose spread (newest minus
oldest stamp) is strictly below ``slop_s`` is emitted and removed from the queues. Unmatched older
messages stay and may pair later. On top of that it counts what it drops and resets its queues
when an input's stamps jump backwards by more than ``max_backwards_s`` (a rosbag loop or a clock
reset). The live node and the offline bag evaluator feed the very same object.

That policy is greedy: the first partner within ``slop_s`` wins, even when a closer one arrives
next. With ``match_wait_s > 0`` a match is held instead and the combination of smallest spread
over everything queued is emitted once it is settled: every input has a message stamped at least
its newest stamp plus its spread (streams arrive in stamp order, so nothing closer can still
come), or some input is ``match_wait_s`` past its newest stamp (the bound). The cost is latency:
a pair waits for the next message of its partner stream (one frame period, ~33 ms at 30 Hz) and
at most ``match_wait_s`` of stamp time. Messages older than an emitted pair on every input can
no longer pair in order and are discarded (counted as unmatched).
"""
from dataclasses import asdict, dataclass, field
import itertools
import math
import numbers
import typing

_NS = 1_000_000_000


def stamp_to_s(sec: int, nanosec: int) -> float:
    """builtin_interfaces/Time fields -> float seconds."""
    return int(sec) + int(nanosec) * 1e-9


def s_to_stamp(stamp_s: float) -> tuple[int, int]:
    """Float seconds -> builtin_interfaces/Time ``(sec, nanosec)``, ``0 <= nanosec < 1e9``."""
    sec, nanosec = divmod(round(float(stamp_s) * _NS), _NS)
    return int(sec), int(nanosec)


@dataclass(frozen=True)
class Pair:
    """One synchronized set: ``stamps`` and ``items`` in input order."""

    stamps: tuple
    items: tuple

    @property
    def spread_s(self) -> float:
        return max(self.stamps) - min(self.stamps)


@dataclass
class PairingStats:
    """Counters. Per-input lists: ``received`` messages, ``evicted`` by queue overflow,
    ``unmatched`` discarded without a partner (reset, flush, or replaced by a duplicate stamp),
    ``duplicates`` (a stamp already queued on that input; the newer item replaces the older).
    Global: ``pairs`` emitted and ``resets`` caused by backwards stamps.

    Every pair holds one message per input, so per input at all times:
    ``received == pairs + evicted + unmatched + pending``.
    """

    received: list[int] = field(default_factory=list)
    evicted: list[int] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    pairs: int = 0
    resets: int = 0

    @classmethod
    def zeros(cls, num_inputs: int) -> 'PairingStats':
        return cls(received=[0] * num_inputs, evicted=[0] * num_inputs,
                   unmatched=[0] * num_inputs, duplicates=[0] * num_inputs)

    def snapshot(self) -> dict:
        """A plain dict copy (lists copied), safe to log or serialise."""
        return asdict(self)


class ApproximatePairer:
    """Pair ``num_inputs`` stamped streams; see the module docstring for the policy.

    ``add(input_index, stamp_s, item)`` returns a list of 0 or 1 ``Pair``. It never raises on
    timing anomalies (gaps, bursts, reordering, jumps); only on a bad index or a non-finite stamp.
    """

    def __init__(self, num_inputs: int = 2, queue_size: int = 10, slop_s: float = 0.05,
                 max_backwards_s: float = 1.0, match_wait_s: float = 0.0):
        if isinstance(num_inputs, bool) or not isinstance(num_inputs, int) or num_inputs < 2:
            raise ValueError(f'num_inputs must be an int >= 2, got {num_inputs!r}')
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f'queue_size must be an int >= 1, got {queue_size!r}')
        if not _positive(slop_s) or math.isinf(slop_s):
            raise ValueError(f'slop_s must be a finite number > 0, got {slop_s!r}')
        if not _positive(max_backwards_s):
            raise ValueError(f'max_backwards_s must be a number > 0 (inf disables), '
                             f'got {max_backwards_s!r}')
        if not isinstance(match_wait_s, numbers.Real) or isinstance(match_wait_s, bool) or not (
                0 <= match_wait_s < math.inf):
            raise ValueError(f'match_wait_s must be a finite number >= 0, got {match_wait_s!r}')
        self.num_inputs: int = num_inputs
        self.queue_size = queue_size
        self.slop_s = float(slop_s)
        self.max_backwards_s = float(max_backwards_s)
        # integer nanoseconds keep stamp identity and comparisons exact, as ROS Time does
        self._slop_ns: int = round(self.slop_s * _NS)
        self._back_ns: float = (math.inf if math.isinf(max_backwards_s)
                                else round(max_backwards_s * _NS))
        self._wait_ns: int = round(float(match_wait_s) * _NS)
        # stamp_ns -> (stamp_s, item), per input
        self._queues: list[dict[int, tuple[float, object]]] = [{} for _ in range(num_inputs)]
        self._newest: list[int | None] = [None] * num_inputs
        self.stats: PairingStats = PairingStats.zeros(num_inputs)

    def add(self, input_index: int, stamp_s: float, item: object) -> list[Pair]:
        """Queue ``item`` stamped ``stamp_s`` seconds on input ``input_index``; return any pair."""
        if isinstance(input_index, bool) or not isinstance(input_index, numbers.Integral) or not (
                0 <= input_index < self.num_inputs):
            raise ValueError(f'input_index must be an int in [0, {self.num_inputs}), '
                             f'got {input_index!r}')
        if not isinstance(stamp_s, numbers.Real) or not math.isfinite(stamp_s):
            raise ValueError(f'stamp_s must be a finite number of seconds, got {stamp_s!r}')
        input_index, stamp_ns = int(input_index), round(float(stamp_s) * _NS)
        newest = self._newest[input_index]
        if newest is not None and newest - stamp_ns > self._back_ns:
            self.stats.resets += 1
            self._discard_all()
        self._newest[input_index] = stamp_ns if newest is None else max(newest, stamp_ns)

        stats = self.stats
        stats.received[input_index] += 1
        queue = self._queues[input_index]
        if stamp_ns in queue:
            stats.duplicates[input_index] += 1
            stats.unmatched[input_index] += 1
        queue[stamp_ns] = (float(stamp_s), item)
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            stats.evicted[input_index] += 1
        if self._wait_ns:
            return self._release()
        if stamp_ns not in queue:
            return []  # the newcomer was itself the oldest and got evicted
        return self._match(input_index, stamp_ns)

    def _match(self, index: int, stamp_ns: int) -> list[Pair]:
        candidates = []
        for other, queue in enumerate(self._queues):
            if other == index:
                continue
            near = [s for s in queue if abs(s - stamp_ns) <= self._slop_ns]
            if not near:
                return []
            near.sort(key=lambda s: abs(s - stamp_ns))
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) < self._slop_ns:
                return [self._take(stamps)]
        return []

    def _take(self, stamps: typing.Sequence[int]) -> Pair:
        """Remove the messages at ``stamps`` (one per input, ns) from the queues as a Pair."""
        taken = [queue.pop(s) for queue, s in zip(self._queues, stamps)]
        self.stats.pairs += 1
        return Pair(stamps=tuple(t[0] for t in taken), items=tuple(t[1] for t in taken))

    def _best(self) -> tuple[int, ...] | None:
        """The queued combination of smallest spread below slop (oldest on a tie), or None."""
        best = None
        for stamps in itertools.product(*(sorted(q) for q in self._queues)):
            spread = max(stamps) - min(stamps)
            if spread < self._slop_ns and (best is None or (spread, max(stamps)) < best[0]):
                best = ((spread, max(stamps)), stamps)
        return None if best is None else best[1]

    def _release(self) -> list[Pair]:
        """Emit every held best match (smallest spread first) that is settled or past the wait
        bound."""
        out: list[Pair] = []
        while True:
            stamps = self._best()
            if stamps is None:
                return out
            spread, last = max(stamps) - min(stamps), max(stamps)
            settled = all(n is not None and n >= last + spread for n in self._newest)
            timed_out = any(n is not None and n - last >= self._wait_ns for n in self._newest)
            if not (settled or timed_out):
                return out
            out.append(self._take(stamps))
            first = min(stamps)
            for index, queue in enumerate(self._queues):
                for old in [s for s in queue if s < first]:
                    del queue[old]
                    self.stats.unmatched[index] += 1

    def _discard_all(self) -> None:
        for index, queue in enumerate(self._queues):
            self.stats.unmatched[index] += len(queue)
            queue.clear()
        self._newest = [None] * self.num_inputs

    def flush(self) -> None:
        """Discard everything queued (counted as unmatched) and forget the newest stamps."""
        self._discard_all()

    def pending(self) -> list[int]:
        """Queued message count per input."""
        return [len(queue) for queue in self._queues]

    def snapshot(self) -> dict:
        """``stats.snapshot()`` plus ``pending`` per input."""
        return {**self.stats.snapshot(), 'pending': self.pending()}


def _positive(value: typing.Any) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    number = float(value)
    return not math.isnan(number) and number > 0
