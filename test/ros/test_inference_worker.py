"""The inference worker: one job in flight, newest waiting jobs win, never out of order."""
import threading
import time

import pytest

from efficientmfd_ros.ros.inference_worker import InferenceWorker, Job

pytestmark = pytest.mark.ros


class Gate:
    """A process function that blocks each job until released, recording the order of stamps."""

    def __init__(self):
        self.done = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def __call__(self, job):
        self.started.release()
        assert self.release.acquire(timeout=5)
        if job.payload == 'boom':
            raise RuntimeError('bad pair')
        self.done.append(job.stamp_s)


@pytest.fixture
def gated():
    gate = Gate()
    errors = []
    worker = InferenceWorker(gate, on_error=lambda job, exc: errors.append((job.stamp_s, exc)))
    worker.start()
    yield worker, gate, errors
    for _ in range(10):
        gate.release.release()
    assert worker.stop(5)


def test_newest_waiting_job_wins_and_drops_are_counted(gated):
    worker, gate, _ = gated
    assert worker.submit(Job(1.0, None)) == 'queued'
    assert gate.started.acquire(timeout=5)  # 1.0 is in flight
    assert worker.submit(Job(2.0, None)) == 'queued'
    assert worker.submit(Job(3.0, None)) == 'replaced'
    assert worker.submit(Job(4.0, None)) == 'replaced'
    gate.release.release()
    assert gate.started.acquire(timeout=5)
    gate.release.release()
    assert worker.wait_idle(5)
    assert gate.done == [1.0, 4.0]
    counts = worker.counts
    assert (counts.submitted, counts.processed, counts.superseded, counts.stale) == (4, 2, 2, 0)


def test_two_waiting_jobs_run_in_order_and_a_third_drops_the_oldest():
    gate = Gate()
    worker = InferenceWorker(gate, max_waiting=2)
    worker.start()
    try:
        assert worker.submit(Job(1.0, None)) == 'queued'
        assert gate.started.acquire(timeout=5)  # 1.0 is in flight
        assert worker.submit(Job(2.0, None)) == 'queued'
        assert worker.submit(Job(3.0, None)) == 'queued'
        assert worker.submit(Job(4.0, None)) == 'replaced'  # 2.0 dropped, 3.0 and 4.0 wait
        assert worker.submit(Job(3.5, None)) == 'stale'
        for _ in range(3):
            gate.release.release()
        assert worker.wait_idle(5)
        assert gate.done == [1.0, 3.0, 4.0]
        counts = worker.counts
        assert (counts.processed, counts.superseded, counts.stale) == (3, 1, 1)
    finally:
        for _ in range(5):
            gate.release.release()
        assert worker.stop(5)
    with pytest.raises(ValueError, match='max_waiting'):
        InferenceWorker(gate, max_waiting=0)


def test_older_jobs_than_in_flight_or_waiting_are_refused(gated):
    worker, gate, _ = gated
    worker.submit(Job(5.0, None))
    assert gate.started.acquire(timeout=5)
    assert worker.submit(Job(4.0, None)) == 'stale'   # older than the one in flight
    assert worker.submit(Job(5.0, None)) == 'stale'   # same stamp: already handled
    assert worker.submit(Job(7.0, None)) == 'queued'
    assert worker.submit(Job(6.0, None)) == 'stale'   # older than the one waiting
    for _ in range(2):
        gate.release.release()
    assert worker.wait_idle(5)
    assert gate.done == [5.0, 7.0]
    assert worker.counts.stale == 3


def test_reset_order_accepts_a_restarted_timeline(gated):
    worker, gate, _ = gated
    worker.submit(Job(100.0, None))
    gate.release.release()
    assert worker.wait_idle(5)
    assert worker.submit(Job(1.0, None)) == 'stale'
    worker.reset_order()
    assert worker.submit(Job(1.0, None)) == 'queued'
    gate.release.release()
    assert worker.wait_idle(5)
    assert gate.done == [100.0, 1.0]


def test_an_exception_is_reported_and_the_worker_keeps_going(gated):
    worker, gate, errors = gated
    worker.submit(Job(1.0, 'boom'))
    gate.release.release()
    assert worker.wait_idle(5)
    worker.submit(Job(2.0, None))
    gate.release.release()
    assert worker.wait_idle(5)
    assert gate.done == [2.0]
    assert [e[0] for e in errors] == [1.0] and 'bad pair' in str(errors[0][1])
    assert (worker.counts.errors, worker.counts.processed) == (1, 1)


def test_stop_finishes_the_job_in_flight_and_restart_works():
    done = []

    def slow(job):
        time.sleep(0.2)
        done.append(job.stamp_s)

    worker = InferenceWorker(slow)
    assert worker.submit(Job(0.5, None)) == 'stale'  # not running yet
    worker.start()
    worker.submit(Job(1.0, None))
    time.sleep(0.05)
    worker.submit(Job(2.0, None))  # waiting: dropped by stop
    assert worker.stop(5)
    assert done == [1.0] and worker.counts.superseded == 1
    worker.start()
    worker.submit(Job(3.0, None))
    assert worker.wait_idle(5)
    assert worker.stop(5)
    assert done == [1.0, 3.0]
