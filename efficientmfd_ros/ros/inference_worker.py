"""One worker thread that runs inference off the executor, newest job first, never out of order.

The executor's callbacks only ``submit``; the worker holds at most one job in flight and
``max_waiting`` waiting (1 by default). A newer job beyond them drops the oldest waiting one
(counted ``superseded``), so with one waiting the freshest job always runs next; a job
older than the one in flight, the last one done or the one waiting is refused (``stale``), so
outputs never go back in time. ``reset_order()`` forgets the ordering after a stamp jump (a bag
loop), so the jobs of the new timeline are accepted. ROS-free: ``process(job)`` does the work.
"""
from collections import deque
from dataclasses import dataclass
import threading


@dataclass
class Job:
    """``stamp_s``: the job's ordering key (the RGB stamp, or the live camera's stamp)."""

    stamp_s: float
    payload: object


@dataclass
class WorkerCounts:
    submitted: int = 0
    processed: int = 0
    superseded: int = 0
    stale: int = 0
    errors: int = 0


class InferenceWorker:
    """Runs ``process(job)`` on its own thread for the newest submitted job.

    ``on_error(job, exc)`` is called (on the worker thread) when ``process`` raises; the worker
    keeps running. ``start()`` and ``stop()`` may be called repeatedly (activate / deactivate).
    """

    def __init__(self, process, on_error=None, name='efficientmfd_inference', max_waiting=1):
        self._process = process
        self._on_error = on_error
        self._name = name
        self._cond = threading.Condition()
        if int(max_waiting) < 1:
            raise ValueError(f'max_waiting must be >= 1, got {max_waiting}')
        self._waiting: deque = deque()
        self._max_waiting = int(max_waiting)
        self._busy = False
        self._last_stamp = None  # newest stamp started since the last reset
        self._running = False
        self._thread = None
        self.counts = WorkerCounts()

    def start(self):
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s=30.0):
        """Drop the waiting job, let the one in flight finish, join the thread.

        Returns False when the job in flight did not finish within ``timeout_s``.
        """
        with self._cond:
            if not self._running:
                return True
            self._running = False
            self.counts.superseded += len(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
        self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        self._thread = None
        return not alive

    @property
    def running(self):
        return self._running

    def reset_order(self):
        """Accept any stamp again (the input timeline restarted); a waiting job of the old
        timeline is dropped."""
        with self._cond:
            self._last_stamp = None
            if self._waiting:
                self.counts.superseded += len(self._waiting)
                self._waiting.clear()
                self._cond.notify_all()

    def submit(self, job):
        """Offer a job; returns 'queued', 'replaced' (a waiting job was dropped) or 'stale'."""
        with self._cond:
            self.counts.submitted += 1
            newest = self._last_stamp
            if self._waiting:
                newest = self._waiting[-1].stamp_s if newest is None else max(
                    newest, self._waiting[-1].stamp_s)
            if not self._running or (newest is not None and job.stamp_s <= newest):
                self.counts.stale += 1
                return 'stale'
            replaced = len(self._waiting) >= self._max_waiting
            if replaced:
                self._waiting.popleft()
                self.counts.superseded += 1
            self._waiting.append(job)
            self._cond.notify_all()
            return 'replaced' if replaced else 'queued'

    def wait_idle(self, timeout_s):
        """Block until nothing is waiting or in flight; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._waiting and not self._busy, timeout_s)

    def _loop(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._waiting) or not self._running)
                if not self._running:
                    self._cond.notify_all()
                    return
                job = self._waiting.popleft()
                self._busy = True
                self._last_stamp = job.stamp_s if self._last_stamp is None else max(
                    self._last_stamp, job.stamp_s)
            try:
                self._process(job)
                ok = True
            except Exception as exc:  # a bad pair must never stop the worker
                ok = False
                if self._on_error is not None:
                    self._on_error(job, exc)
            with self._cond:
                self._busy = False
                if ok:
                    self.counts.processed += 1
                else:
                    self.counts.errors += 1
                self._cond.notify_all()
