"""The input side: image messages -> cheap checks -> pairing -> the inference worker.

Runs in the subscription callbacks, so it only does what is cheap: it checks the fields it can
check without decoding (encoding, data length against height*step), stamps the arrival, feeds the
``ApproximatePairer`` and submits pairs to the worker. Decoding happens on the worker, only for
the pairs that get processed. Input index 0 is RGB, 1 is thermal.

When one camera is silent for longer than ``modality_timeout_s`` and ``allow_single_modality`` is
on, each message of the live camera becomes a job of its own with the silent modality missing
(the worker blanks it with zeros); the pairer is not fed then, so its counters keep meaning
"dropped while both cameras were live".
"""
from dataclasses import dataclass
import threading
import time

import numpy as np

from efficientmfd_ros.core.image_codec import ENCODINGS
from efficientmfd_ros.core.pairing import ApproximatePairer, stamp_to_s
from efficientmfd_ros.ros.diagnostics import INPUTS
from efficientmfd_ros.ros.inference_worker import Job


@dataclass
class PairPayload:
    """The messages of one job; ``None`` marks a silent modality (single-modality mode)."""

    rgb: object
    thermal: object
    spread_s: float = 0.0


class Intake:
    """Feeds the pairer and the worker. ``config`` is the node's live ``NodeConfig``."""

    def __init__(self, config, stats, worker, problems, compressed):
        self._config = config
        self._stats = stats
        self._worker = worker
        self._problems = problems
        self._compressed = compressed
        self._lock = threading.Lock()
        self._carry = None
        self.pairer = self._new_pairer()

    def _new_pairer(self):
        return ApproximatePairer(
            num_inputs=2, queue_size=int(self._config.queue_size),
            slop_s=float(self._config.approximate_sync_tolerance_s),
            max_backwards_s=float(self._config.max_backwards_s),
            match_wait_s=float(self._config.approximate_sync_wait_s))

    def rebuild_pairer(self):
        """Apply new sync settings. Queued messages are dropped and counted as unmatched; the
        counters of the old pairer carry over so totals never go down."""
        with self._lock:
            self.pairer.flush()
            self._carry = self._add(self._carry, self.pairer.stats.snapshot())
            self.pairer = self._new_pairer()

    @staticmethod
    def _add(a, b):
        if a is None:
            return b
        return {k: [x + y for x, y in zip(v, b[k])] if isinstance(v, list) else v + b[k]
                for k, v in a.items()}

    def flush(self):
        with self._lock:
            self.pairer.flush()

    def snapshot(self):
        """Pairing counters (``PairingStats`` fields) since configure, plus ``pending``."""
        with self._lock:
            pending = self.pairer.pending()
            totals = self._add(self._carry, self.pairer.stats.snapshot())
        return {**totals, 'pending': pending}

    def _check(self, index, msg):
        """Error text when ``msg`` cannot be decoded, judged from its fields only."""
        if self._compressed:
            return None if len(msg.data) else 'compressed image has no data'
        spec = ENCODINGS.get(msg.encoding)
        if spec is None:
            return f'unsupported encoding {msg.encoding!r}'
        if index == 0 and np.dtype(spec[0]) != np.uint8:
            return f'{msg.encoding} cannot be an RGB image (needs an 8-bit encoding)'
        expected = int(msg.height) * int(msg.step)
        if len(msg.data) != expected or expected == 0:
            return (f'data length {len(msg.data)} does not match height*step = '
                    f'{msg.height}*{msg.step} = {expected}')
        return None

    def on_message(self, index, msg):
        """Subscription callback body for input ``index`` (0 rgb, 1 thermal)."""
        start = time.perf_counter()
        name = INPUTS[index]
        other_silent = self._stats.silent_s(1 - index) > self._config.modality_timeout_s
        self._stats.arrived(index)
        error = self._check(index, msg)
        if error:
            self._stats.count('bad_input', index)
            self._problems.report(f'bad_{name}', f'dropping {name} image: {error}')
            return
        stamp_s = stamp_to_s(msg.header.stamp.sec, msg.header.stamp.nanosec)
        if other_silent and self._config.allow_single_modality:
            self._stats.count('single_modality')
            payload = PairPayload(rgb=msg, thermal=None) if index == 0 else PairPayload(
                rgb=None, thermal=msg)
            self._worker.submit(Job(stamp_s, payload))
            self._stats.observe(pairing_ms=(time.perf_counter() - start) * 1e3)
            return
        with self._lock:
            resets = self.pairer.stats.resets
            pairs = self.pairer.add(index, stamp_s, msg)
            went_back = self.pairer.stats.resets != resets
        if went_back:
            self._worker.reset_order()
            self._problems.report(
                'backwards', f'{name} stamp went back beyond max_backwards_s '
                f'({self._config.max_backwards_s:g} s): pairing restarted (bag loop or clock '
                'reset?)')
        for pair in pairs:
            rgb, thermal = pair.items
            self._stats.observe(spread_ms=pair.spread_s * 1e3)
            self._worker.submit(Job(pair.stamps[0], PairPayload(rgb, thermal, pair.spread_s)))
        self._stats.observe(pairing_ms=(time.perf_counter() - start) * 1e3)
