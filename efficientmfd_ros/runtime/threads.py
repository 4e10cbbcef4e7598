"""CPU thread settings that hold up when other processes share the cores.

Measured on a 2-core machine (issue 16): with one other busy process, torch's OpenMP pool slowed
~10x (its threads spin waiting for each other while the scheduler runs someone else), onnxruntime
~3.5x. Both backends therefore use as many intra-op threads as this process may run on (its CPU
affinity, not the machine's core count) and do not spin: onnxruntime's
``session.intra_op.allow_spinning`` is off, and OpenMP gets ``OMP_WAIT_POLICY=PASSIVE`` unless the
environment already says otherwise (it must be set before torch starts its pool, so the node's
entry point, ``ros/node_main.py``, sets it before its imports; importing this module would already
load torch through ``runtime/__init__``).
"""
import os
from types import ModuleType
from typing import Any


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_torch_cpu(torch_module: ModuleType, threads: int = 0) -> int:
    """Set torch's intra-op threads to ``threads`` (0: ``usable_cpus()``); returns the count."""
    count = int(threads) or usable_cpus()
    torch_module.set_num_threads(count)
    return count


def ort_cpu_options(ort_module: ModuleType, threads: int = 0) -> Any:
    """onnxruntime SessionOptions for the CPU: ``threads`` intra-op threads (0:
    ``usable_cpus()``), one inter-op thread, sequential execution, no spin-waiting."""
    options = ort_module.SessionOptions()
    options.intra_op_num_threads = int(threads) or usable_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort_module.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.add_session_config_entry('session.inter_op.allow_spinning', '0')
    return options
