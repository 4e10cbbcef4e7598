"""ONNX exports of the same network timed side by side in onnxruntime on this CPU.

    ./dev run python benchmarks/bench_onnx_graphs.py --onnx A.onnx B.onnx [...] [--reps 30]
        [--threads 0] [--busy]

For comparing two exports (e.g. before and after a change to the exported graph): each file gets
its own session with the node's CPU options (`runtime/threads.py`: intra-op threads = usable CPUs,
no spin-waiting), random inputs of the sidecar's shapes, and the runs are interleaved (A, B, A,
B, ...) so drifts in machine speed fall on every file alike. `--busy` keeps one core busy with a
plain Python loop in another process meanwhile. Prints median / p90 ms per file, each median's
ratio to the first file's, and the largest output difference from the first file (same inputs),
so a faster graph that computes something else shows.
"""
import argparse
import multiprocessing
from pathlib import Path
import sys
import time

import numpy as np


def _spin() -> None:
    while True:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--onnx', nargs='+', required=True, help='exports with their sidecars')
    parser.add_argument('--reps', type=int, default=30)
    parser.add_argument('--threads', type=int, default=0, help='intra-op threads (0: usable CPUs)')
    parser.add_argument('--busy', action='store_true', help='one busy core meanwhile')
    args = parser.parse_args(argv)
    import onnxruntime as ort

    from efficientmfd_ros.runtime.export import read_sidecar
    from efficientmfd_ros.runtime.threads import ort_cpu_options

    sessions, metas = [], []
    for path in args.onnx:
        metas.append(read_sidecar(path))
        options = ort_cpu_options(ort, args.threads)
        options.log_severity_level = 3
        sessions.append(ort.InferenceSession(path, options, providers=['CPUExecutionProvider']))
    rng = np.random.default_rng(0)
    feeds = {}
    for item in metas[0]['inputs']:
        shape = tuple(item['shape'])
        draw = rng.standard_normal if item['name'] == 'noise_boxes' else rng.random
        feeds[item['name']] = draw(shape).astype(np.float32)
    reference = None
    for index, session in enumerate(sessions):
        outputs = session.run(['pred_logits', 'pred_boxes'], feeds)
        if index == 0:
            reference = outputs
        diff = [float(np.abs(a - b).max()) for a, b in zip(outputs, reference)]
        print(f'{Path(args.onnx[index]).name}: logits max diff {diff[0]:.2e}, '
              f'boxes max diff {diff[1]:.3f} px (from the first file)')
        for _ in range(3):
            session.run(None, feeds)
    busy = None
    if args.busy:
        busy = multiprocessing.get_context('spawn').Process(target=_spin, daemon=True)
        busy.start()
        time.sleep(0.5)
    times: list[list[float]] = [[] for _ in sessions]
    try:
        for _ in range(args.reps):
            for index, session in enumerate(sessions):
                start = time.perf_counter()
                session.run(None, feeds)
                times[index].append((time.perf_counter() - start) * 1000)
    finally:
        if busy is not None:
            busy.terminate()
    first = float(np.median(times[0]))
    print(f'{"file":<40}{"median ms":>10}{"p90 ms":>9}{"ratio":>7}'
          f'   ({args.reps} interleaved runs{", one busy core" if args.busy else ""})')
    for path, values in zip(args.onnx, times):
        median = float(np.median(values))
        print(f'{Path(path).name[-40:]:<40}{median:>10.1f}{np.percentile(values, 90):>9.1f}'
              f'{median / first:>7.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
