"""CPU backends side by side, on a quiet machine and with a competing busy process.

    ./dev run python benchmarks/bench_cpu_backends.py [--weights W] [--reps 15] [--out FILE.md]

One 640x512 pair (the project's rendered night street), fusion on, through `FusionDetector.infer`
as the node calls it, committed weights by default. Rows, each in its own child process (the
OpenMP wait policy is fixed when torch loads):

- torch, OpenMP default wait policy (threads spin while waiting: how torch ran before);
- torch, `OMP_WAIT_POLICY=PASSIVE` (what the node sets), intra-op threads = usable CPUs;
- onnxruntime fp32 (the export `backend: auto` makes into its cache), no spin-waiting;
- onnxruntime for a pair that needs no fused image (no fused/image subscriber, or between every
  `fused_image_every_n`-th pair): the fusion-free graph.

Each row is measured twice in the same run: quiet, then while this script keeps one core busy with
a plain Python loop (`while True: pass`) in another process. Prints median / p90 latency, the
slowdown under load and onnxruntime's ratio to torch; the first run of onnxruntime exports the
weights (its time is not counted). Also checks onnxruntime against torch on the pair: boxes within
1 px and scores within 1e-3. No int8 row: static quantization was not built (see the results file).
"""
import argparse
import datetime
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / 'models' / 'efficientmfd_lite_llvip.pt'
ROWS = (('torch', 'default', True), ('torch', 'passive', True), ('onnxruntime', 'passive', True),
        ('onnxruntime', 'passive', False))


def child(backend: str, reps: int, weights: str, dump: str, fuse: bool):
    import numpy as np

    from efficientmfd_ros.bags.synthetic_scene import render_sequence
    from efficientmfd_ros.runtime import load_detector

    frame = render_sequence(num_frames=1, width=640, height=512, seed=3)[0]
    det = load_detector(weights, backend=backend, device='cpu', score_threshold=0.05,
                        cpu_threads=0)
    for _ in range(3):
        det.infer(frame.rgb, frame.thermal, fuse=fuse)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = det.infer(frame.rgb, frame.thermal, fuse=fuse)
        times.append((time.perf_counter() - start) * 1e3)
    np.savez(dump, boxes=result.boxes, scores=result.scores)
    print(json.dumps({'median_ms': float(np.median(times)),
                      'p90_ms': float(np.percentile(times, 90)),
                      'backend': det.describe()}))


def run_row(backend, omp, reps, weights, dump, fuse=True):
    env = dict(os.environ)
    env.pop('OMP_WAIT_POLICY', None)
    if omp == 'passive':
        env['OMP_WAIT_POLICY'] = 'PASSIVE'
    out = subprocess.run([sys.executable, __file__, '--child', backend, '--reps', str(reps),
                          '--weights', str(weights), '--dump', str(dump)]
                         + ([] if fuse else ['--no-fuse']), env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def parity(dumps) -> str:
    import numpy as np
    a, b = (np.load(f'{d}.npz') for d in dumps)
    if len(a['boxes']) != len(b['boxes']):
        return f'different box counts ({len(a["boxes"])} vs {len(b["boxes"])})'
    box = float(np.abs(a['boxes'] - b['boxes']).max(initial=0.0))
    score = float(np.abs(a['scores'] - b['scores']).max(initial=0.0))
    ok = box <= 1.0 and score <= 1e-3
    return (f'{len(a["boxes"])} boxes, largest box difference {box:.3f} px, score difference '
            f'{score:.2e}: {"within" if ok else "OUTSIDE"} 1 px / 1e-3')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', default=str(WEIGHTS))
    parser.add_argument('--reps', type=int, default=15)
    parser.add_argument('--out', help='also write the table (markdown) here')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--dump', help=argparse.SUPPRESS)
    parser.add_argument('--no-fuse', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.reps, args.weights, args.dump, not args.no_fuse)
        return 0
    tmp = Path(os.environ.get('TMPDIR', '/tmp')) / f'bench_cpu_{os.getpid()}'
    tmp.mkdir(parents=True, exist_ok=True)
    run_row('onnxruntime', 'passive', 1, args.weights, tmp / 'warm')  # export, if not cached
    results = {}
    for phase in ('quiet', 'one busy core'):
        load = None
        if phase != 'quiet':
            load = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
        try:
            for backend, omp, fuse in ROWS:
                key = f'{backend} ({omp} OpenMP wait)' if backend == 'torch' else backend
                key += '' if fuse else ', no fused image'
                results.setdefault(key, {})[phase] = run_row(
                    backend, omp, args.reps, args.weights, tmp / f'{backend}_{omp}_{fuse}', fuse)
                print(f'{phase:>14}  {key:<32} {results[key][phase]["median_ms"]:8.1f} ms',
                      flush=True)
        finally:
            if load is not None:
                load.kill()
                load.wait()
    torch_key = 'torch (passive OpenMP wait)'
    lines = [f'# CPU backends, quiet and with one busy core ({datetime.date.today()})', '',
             f'`benchmarks/bench_cpu_backends.py`, {platform.processor() or platform.machine()}, '
             f'{os.cpu_count()} CPUs, weights `{Path(args.weights).name}`, 640x512 pair, fusion '
             f'on unless said, {args.reps} timed runs per row (median / p90 ms). Same run, rows '
             'in turn.', '',
             '| backend | quiet | one busy core | slowdown under load |', '|---|---|---|---|']
    for key, phases in results.items():
        q, b = phases['quiet'], phases['one busy core']
        lines.append(f'| {key} | {q["median_ms"]:.1f} / {q["p90_ms"]:.1f} | '
                     f'{b["median_ms"]:.1f} / {b["p90_ms"]:.1f} | '
                     f'{b["median_ms"] / q["median_ms"]:.2f}x |')
    ort = results['onnxruntime']
    lines += ['', 'onnxruntime / torch (passive) median: '
              + ', '.join(f'{p} {ort[p]["median_ms"] / results[torch_key][p]["median_ms"]:.2f}'
                          for p in ('quiet', 'one busy core')),
              '', 'Parity (onnxruntime vs torch, same pair): '
              + parity((tmp / 'onnxruntime_passive_True', tmp / 'torch_passive_True'))]
    text = '\n'.join(lines) + '\n'
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
