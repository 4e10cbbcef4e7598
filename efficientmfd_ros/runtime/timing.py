"""Per-stage timing that is honest about asynchronous GPU work.

On a CUDA device every stage is bracketed by CUDA events recorded on the current stream and read
only after the frame's final synchronization, so a stage's time is its GPU time and never the time
taken to enqueue kernels. On the CPU torch runs synchronously and ``time.perf_counter`` is exact.
"""
from contextlib import contextmanager
import time
from typing import Iterator

import torch


class StageTimer:
    """Collects named stage durations in milliseconds for one frame.

    Usage: ``with timer.stage('backbone'): ...`` for each stage, then ``timer.result_ms()`` once
    the frame's outputs have been copied to the host (on CUDA it synchronizes on the last event
    itself).
    """

    def __init__(self, device: str | torch.device) -> None:
        self._cuda = torch.device(device).type == 'cuda'
        self._events: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []
        self._cpu_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self._events.append((name, start, end))
        else:
            t0 = time.perf_counter()
            try:
                yield
            finally:
                self._cpu_ms[name] = self._cpu_ms.get(name, 0.0) + (time.perf_counter() - t0) * 1e3

    def add_ms(self, name: str, value: float) -> None:
        """Record a duration measured elsewhere (e.g. by a backend that times itself)."""
        self._cpu_ms[name] = self._cpu_ms.get(name, 0.0) + float(value)

    def result_ms(self) -> dict[str, float]:
        out = dict(self._cpu_ms)
        if self._events:
            self._events[-1][2].synchronize()
            for name, start, end in self._events:
                out[name] = out.get(name, 0.0) + float(start.elapsed_time(end))
        return out
