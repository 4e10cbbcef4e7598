"""ONNX exports of the same network timed side by side in onnxruntime on this CPU.

    ./dev run python benchmarks/bench_onnx_graphs.py --onnx A.onnx B.onnx [...] [--reps 30]
        [--threads 0] [--busy]

For comparing two exports (e.g. before and after a change to the exported graph): each file gets
its own session with the node's CPU options (`runtime/threads.py`: intra-op threads = usable CPUs,
no spin-waiting), the same random images and noise boxes (a file drawing N boxes gets the first N
of one draw), and the runs are interleaved (A, B, A,
B, ...) so drifts in machine speed fall on every file alike. `--busy` keeps one core busy with a
plain Python loop in another process meanwhile. Prints median / p90 ms per file, each median's
ratio to the first file's, and the largest output difference from the first file where the output
shapes agree, so a faster graph that computes something else shows.
"""
import argparse
from pathlib import Path
import subprocess
import sys
import time

import numpy as np


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
    images: dict = {}
    noise = rng.standard_normal((1, 1000, 4)).astype(np.float32)
    all_feeds, reference = [], None
    for index, (session, meta) in enumerate(zip(sessions, metas)):
        feeds = {}
        for item in meta['inputs']:
            shape = tuple(item['shape'])
            if item['name'] == 'noise_boxes':  # files drawing N boxes share the first N
                feeds[item['name']] = np.ascontiguousarray(noise[:, :shape[1]])
            else:
                feeds[item['name']] = images.setdefault(
                    (item['name'], shape), rng.random(shape).astype(np.float32))
        all_feeds.append(feeds)
        outputs = session.run(['pred_logits', 'pred_boxes'], feeds)
        if index == 0:
            reference = outputs
        name = Path(args.onnx[index]).name
        if all(a.shape == b.shape for a, b in zip(outputs, reference)):
            diff = [float(np.abs(a - b).max()) for a, b in zip(outputs, reference)]
            print(f'{name}: logits max diff {diff[0]:.2e}, boxes max diff {diff[1]:.3f} px '
                  '(from the first file)')
        else:
            print(f'{name}: {outputs[0].shape[1]} boxes (the first file: '
                  f'{reference[0].shape[1]}), not compared')
        for _ in range(3):
            session.run(None, feeds)
    busy = None
    if args.busy:
        busy = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
        time.sleep(0.5)
    times: list[list[float]] = [[] for _ in sessions]
    try:
        for _ in range(args.reps):
            for index, (session, feeds) in enumerate(zip(sessions, all_feeds)):
                start = time.perf_counter()
                session.run(None, feeds)
                times[index].append((time.perf_counter() - start) * 1000)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
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
