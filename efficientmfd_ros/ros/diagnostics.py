"""What the node counts and times, and the diagnostic reports built from it (ROS-free).

``NodeStats`` is fed by the subscription callbacks and the inference worker (thread-safe).
``DiagnosticsReporter.report()`` turns a snapshot into two reports, ``inputs`` and
``inference``, each ``(suffix, level, message, values)`` with level 'ok' | 'warn' | 'error';
the node wraps them into diagnostic_msgs. Rates are count deltas over the time between reports.
"""
from collections import deque
import threading
import time

import numpy as np

INPUTS = ('rgb', 'thermal')
# per-input counters; the others are global
INPUT_COUNTERS = ('received', 'bad_input')
GLOBAL_COUNTERS = ('size_mismatch', 'single_modality', 'published', 'fused_published',
                   'debug_published', 'camera_info_mismatch')
# per-pair timings in ms, kept over the last WINDOW pairs
TIMINGS = ('pairing_ms', 'convert_ms', 'model_ms', 'publish_ms', 'debug_ms', 'overhead_ms',
           'total_ms', 'spread_ms')
WINDOW = 300


class NodeStats:
    """Counters, per-input arrival times and windows of per-pair timings."""

    def __init__(self, now=time.monotonic):
        self._now = now
        self._lock = threading.Lock()
        self.reset_arrivals()
        self.counters = {name: [0, 0] for name in INPUT_COUNTERS}
        self.counters.update({name: 0 for name in GLOBAL_COUNTERS})
        self.windows = {name: deque(maxlen=WINDOW) for name in TIMINGS}

    def reset_arrivals(self):
        """Treat both inputs as heard from now (called on activate)."""
        start = self._now()
        self.last_arrival = [start, start]
        self.heard = [False, False]

    def arrived(self, index):
        with self._lock:
            self.last_arrival[index] = self._now()
            self.heard[index] = True
            self.counters['received'][index] += 1

    def count(self, name, index=None):
        with self._lock:
            if index is None:
                self.counters[name] += 1
            else:
                self.counters[name][index] += 1

    def observe(self, **timings_ms):
        with self._lock:
            for name, value in timings_ms.items():
                self.windows[name].append(float(value))

    def silent_s(self, index):
        """Seconds since input ``index`` was last heard (or since activation)."""
        return self._now() - self.last_arrival[index]

    def snapshot(self):
        with self._lock:
            counters = {k: list(v) if isinstance(v, list) else v for k, v in self.counters.items()}
            windows = {k: np.asarray(v, dtype=np.float64) for k, v in self.windows.items()}
        return counters, windows


def percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else float('nan')


class DiagnosticsReporter:
    """Builds the periodic reports; keeps the previous counts to compute rates, and counts the
    times each camera went silent (``<input>_silent_episodes``)."""

    def __init__(self, now=time.monotonic):
        self._now = now
        self._last_time = None
        self._last = None
        self._was_silent = [False, False]
        self._silent_episodes = [0, 0]

    def report(self, stats, pairing, worker, context):
        """``pairing``: ``ApproximatePairer.snapshot()``; ``worker``: ``WorkerCounts``;
        ``context``: dict with backend, device, active, modality_timeout_s,
        allow_single_modality. Returns ``[inputs_report, inference_report]``."""
        counters, windows = stats.snapshot()
        now = self._now()
        current = {'rgb': counters['received'][0], 'thermal': counters['received'][1],
                   'pairs': pairing['pairs'], 'processed': worker.processed,
                   'bad_rgb': counters['bad_input'][0], 'bad_thermal': counters['bad_input'][1],
                   'size_mismatch': counters['size_mismatch'], 'errors': worker.errors}
        dt = None if self._last_time is None else max(now - self._last_time, 1e-6)
        delta = {k: (v - self._last[k]) if dt else 0 for k, v in current.items()}
        rate = {k: (delta[k] / dt if dt else 0.0) for k in current}
        self._last_time, self._last = now, current
        values = self._input_values(stats, counters, windows, pairing, worker, rate)
        inputs = ('inputs', *self._input_level(values, delta, rate, context), values)
        inference = self._inference(windows, worker, rate, delta, context)
        inference[3].update({name: counters[name] for name in (
            'published', 'fused_published', 'debug_published', 'camera_info_mismatch')})
        return [inputs, inference]

    def _input_values(self, stats, counters, windows, pairing, worker, rate):
        spread = windows['spread_ms']
        values = {'rgb_rate_hz': rate['rgb'], 'thermal_rate_hz': rate['thermal'],
                  'pair_rate_hz': rate['pairs'],
                  'pair_dt_abs_mean_ms': float(np.mean(spread)) if len(spread) else float('nan'),
                  'pair_dt_abs_max_ms': float(np.max(spread)) if len(spread) else float('nan')}
        for i, name in enumerate(INPUTS):
            values[f'{name}_silent_s'] = stats.silent_s(i)
            values[f'{name}_received'] = counters['received'][i]
            values[f'{name}_evicted'] = pairing['evicted'][i]
            values[f'{name}_unmatched'] = pairing['unmatched'][i]
            values[f'{name}_bad_input'] = counters['bad_input'][i]
        values.update({'pairs': pairing['pairs'], 'stamp_resets': pairing['resets'],
                       'size_mismatch': counters['size_mismatch'],
                       'single_modality_frames': counters['single_modality'],
                       'superseded_pairs': worker.superseded, 'stale_pairs': worker.stale})
        return values

    def _input_level(self, values, delta, rate, context):
        """(level, message) of the inputs report; also counts silent episodes into values."""
        timeout = context['modality_timeout_s']
        silent = [values[f'{name}_silent_s'] for name in INPUTS]
        quiet = [silent[i] > timeout and context['active'] for i in range(2)]
        for i, name in enumerate(INPUTS):
            if quiet[i] and not self._was_silent[i]:
                self._silent_episodes[i] += 1
            self._was_silent[i] = quiet[i]
            values[f'{name}_silent_episodes'] = self._silent_episodes[i]
        if not context['active']:
            return 'ok', 'inactive: not subscribed'
        if all(quiet):
            return 'error', f'no rgb or thermal images for over {timeout:g} s'
        if any(quiet):
            index = quiet.index(True)
            mode = (f'detecting on {INPUTS[1 - index]} only' if context['allow_single_modality']
                    else 'no pairs')
            return 'warn', f'{INPUTS[index]} silent for {silent[index]:.1f} s: {mode}'
        bad = delta['bad_rgb'] + delta['bad_thermal'] + delta['size_mismatch']
        if bad:
            return 'warn', f'{bad} bad input messages in the last period'
        return 'ok', f'pairing at {rate["pairs"]:.1f} Hz'

    def _inference(self, windows, worker, rate, delta, context):
        model = windows['model_ms']
        values = {'backend': context['backend'], 'device': context['device'],
                  'inference_latency_p50_ms': percentile(model, 50),
                  'inference_latency_p95_ms': percentile(model, 95),
                  'processed': worker.processed, 'processed_rate_hz': rate['processed'],
                  'errors': worker.errors}
        for name in ('pairing_ms', 'convert_ms', 'publish_ms', 'debug_ms', 'overhead_ms',
                     'total_ms'):
            values[f'{name[:-3]}_p50_ms'] = percentile(windows[name], 50)
        values['overhead_p95_ms'] = percentile(windows['overhead_ms'], 95)
        if not context['active']:
            return 'inference', 'ok', 'inactive', values
        if delta['errors']:
            return 'inference', 'error', f'{delta["errors"]} pairs failed in inference', values
        period_ms = 1000.0 / rate['rgb'] if rate['rgb'] > 0 else float('inf')
        p95 = values['inference_latency_p95_ms']
        if p95 > period_ms:
            return ('inference', 'warn', f'latency p95 {p95:.1f} ms exceeds the frame period '
                    f'{period_ms:.1f} ms: pairs are dropped', values)
        return 'inference', 'ok', f'p50 {values["inference_latency_p50_ms"]:.1f} ms', values


class ProblemLog:
    """Logs each kind of problem at most once per ``period_s``, saying how many were held back.

    ``log(text)`` is the sink (a logger's ``warning``); ``report(key, text)`` is thread-safe.
    """

    def __init__(self, log, period_s=5.0, now=time.monotonic):
        self._log = log
        self._period_s = period_s
        self._now = now
        self._lock = threading.Lock()
        self._state = {}  # key -> [time of last log, messages held back since]

    def report(self, key, text):
        now = self._now()
        with self._lock:
            state = self._state.get(key)
            if state is not None and now - state[0] < self._period_s:
                state[1] += 1
                return
            held = 0 if state is None else state[1]
            self._state[key] = [now, 0]
        self._log(text + (f' ({held} more like this since the last report)' if held else ''))
