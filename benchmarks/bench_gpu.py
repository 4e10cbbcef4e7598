"""GPU inference speed of both model configs against the paper's setting.

    ./dev run python benchmarks/bench_gpu.py [--frames 50] [--budget-s 270] [--out FILE]

On a CUDA machine, for `efficientmfd_lite` and `efficientmfd_r50` at 640x512 and 1024x768 (w x h,
the network input; camera images of the same size): torch fp32, torch fp16 (autocast), the fast
path (fp16 weights, channels-last, CUDA graphs) and TensorRT fp16 where the tensorrt package is
installed (its engines are built into a temporary cache on first use, which can take minutes); each
with fusion on and off. Per row: median and p95 frame latency and FPS, from CUDA events around
`FusionDetector.infer` (upload, network, postprocessing and the copy of results to the host) after
warm-up, median per-stage times, and peak memory of torch's allocator (TensorRT's own workspace is
not included). The paper's setting (ResNet-50, 500 proposals, 1024x768) is the baseline: the
upstream code runs it at 7.4 FPS on an A100 in fp32.

Parity: fp16 and fast-path detections are matched to fp32's (same class, IoU >= 0.5) and must lie
within 2 px and 0.02 in score. Weights are random (speed does not depend on them) with the head's
box-delta layers scaled to a trained head's small steps, since random ones compound large box moves
over six stages and make any precision comparison chaotic.

Writes the table to stdout and `benchmarks/results/bench_gpu_<card>.md`. Without CUDA it prints
"no CUDA device" and exits 0. Rows that would overrun `--budget-s` are skipped and listed.
"""
import argparse
import copy
import datetime
import importlib.util
from pathlib import Path
import re
import sys
import tempfile
import time

import numpy as np
import torch

from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
from efficientmfd_ros.runtime import load_detector
from efficientmfd_ros.runtime.backend_torch import TorchBackend
from efficientmfd_ros.runtime.detector import FusionDetector
from efficientmfd_ros.runtime.postprocess import PostprocessConfig
from efficientmfd_ros.runtime.preprocess import PreprocessConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ('efficientmfd_lite', 'efficientmfd_r50')
SIZES = ((640, 512), (1024, 768))
MODES = ('torch fp32', 'torch fp16', 'fast fp16', 'tensorrt fp16')
PARITY_TOP = 50
HEADER = ('| config | size | mode | fusion | median ms | p95 ms | FPS | backbone | fusion | head '
          '| post | peak MiB | fp16 parity |\n' + '|---' * 13 + '|')


def model_for(name, hw):
    cfg = ModelConfig.from_yaml(ROOT / 'config' / 'model' / f'{name}.yaml')
    cfg = ModelConfig.from_dict({**cfg.to_dict(), 'input_size': [hw[0], hw[1]]})
    torch.manual_seed(0)
    model = build_model(cfg, load_backbone_weights=False).eval()
    with torch.no_grad():
        for stage in model.head.stages:
            stage.box_deltas.weight.mul_(0.1)
            stage.box_deltas.bias.mul_(0.1)
    return model


def make_detector(mode, model, tmp: Path):
    post = PostprocessConfig(score_threshold=0.0, nms_iou=0.5, max_detections=100)
    if mode == 'tensorrt fp16':
        weights = save_checkpoint(tmp / f'{id(model)}.pt', model)
        from efficientmfd_ros.runtime.export import export_onnx
        export_onnx(weights, fp16=True, log=lambda _: None)
        return load_detector(weights, backend='tensorrt', device='cuda', precision='fp16',
                             score_threshold=0.0, max_detections=100,
                             build_engine_if_missing=True, engine_cache_dir=str(tmp / 'engines'))
    precision = 'fp32' if mode == 'torch fp32' else 'fp16'
    backend = TorchBackend(copy.deepcopy(model), 'cuda', precision, fast=mode == 'fast fp16')
    return FusionDetector(backend, PreprocessConfig(backend.input_hw), post)


def frame(hw):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (*hw, 3), dtype=np.uint8),
            rng.integers(0, 65536, hw, dtype=np.uint16))


def measure(det, rgb, thermal, fuse, frames, warmup=10):
    """(frame latencies ms, per-stage medians ms, peak MiB), CUDA events around each frame."""
    for _ in range(warmup):
        det.infer(rgb, thermal, fuse=fuse)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    latencies, stages = [], []
    for _ in range(frames):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        result = det.infer(rgb, thermal, fuse=fuse)
        end.record()
        end.synchronize()
        latencies.append(start.elapsed_time(end))
        stages.append(result.timings_ms)
    names = {k for s in stages for k in s}
    medians = {k: float(np.median([s.get(k, 0.0) for s in stages])) for k in names}
    return np.array(latencies), medians, torch.cuda.max_memory_allocated() / 2 ** 20


def iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def parity(ref, got) -> str:
    """Share of fp32's top detections matched in ``got`` within 2 px and 0.02, and worst gaps."""
    n = min(PARITY_TOP, len(ref))
    if n == 0:
        return 'n/a (no detections)'
    overlaps = iou(ref.boxes[:n], got.boxes) if len(got) else np.zeros((n, 0))
    ok, worst_px, worst_score = 0, 0.0, 0.0
    for i in range(n):
        same = (got.labels == ref.labels[i]) & (overlaps[i] >= 0.5)
        if not same.any():
            worst_px = float('inf')
            continue
        j = int(np.argmax(np.where(same, overlaps[i], -1)))
        px = float(np.abs(got.boxes[j] - ref.boxes[i]).max())
        ds = abs(float(got.scores[j]) - float(ref.scores[i]))
        worst_px, worst_score = max(worst_px, px), max(worst_score, ds)
        ok += px <= 2.0 and ds <= 0.02
    verdict = 'PASS' if ok == n else 'FAIL'
    return f'{verdict} {ok}/{n}, max {worst_px:.2f} px / {worst_score:.4f}'


def row_text(name, hw, mode, fuse, lat, stages, peak, par) -> str:
    med, p95 = float(np.median(lat)), float(np.percentile(lat, 95))
    stage = ' | '.join(f'{stages[k]:.2f}' if k in stages else '-'
                       for k in ('backbone', 'fusion', 'head', 'postprocess'))
    if 'network' in stages:
        stage = f'{stages["network"]:.2f} (whole network) | - | - | {stages["postprocess"]:.2f}'
    return (f'| {name} | {hw[1]}x{hw[0]} | {mode} | {"on" if fuse else "off"} | {med:.2f} | '
            f'{p95:.2f} | {1e3 / med:.1f} | {stage} | {peak:.0f} | {par} |')


def run(args):
    modes = [m for m in MODES if m != 'tensorrt fp16' or importlib.util.find_spec('tensorrt')]
    t0, lines, skipped = time.monotonic(), [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in CONFIGS:
            for w, h in SIZES:
                base = model_for(name, (h, w))
                rgb, thermal = frame((h, w))
                reference = None
                for mode in modes:
                    if time.monotonic() - t0 > args.budget_s:
                        skipped.append(f'{name} {w}x{h} {mode}')
                        continue
                    det = make_detector(mode, base, Path(tmp))
                    for fuse in (True, False):
                        lat, stages, peak = measure(det, rgb, thermal, fuse, args.frames)
                        par = '-'
                        if fuse:
                            result = det.infer(rgb, thermal)
                            if mode == 'torch fp32':
                                reference = result
                            elif reference is not None:
                                par = parity(reference, result)
                        line = row_text(name, (h, w), mode, fuse, lat, stages, peak, par)
                        print(line, flush=True)
                        lines.append(line)
                    del det
                    torch.cuda.empty_cache()
    return lines, skipped, time.monotonic() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=50, help='timed frames per row')
    parser.add_argument('--budget-s', type=float, default=270.0,
                        help='skip the remaining rows once this much time has passed')
    parser.add_argument('--out', default=None, help='default: results/bench_gpu_<card>.md')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('bench_gpu: no CUDA device (torch.cuda.is_available() is False); nothing to do')
        return 0
    card = torch.cuda.get_device_name(0)
    slug = re.sub(r'[^a-z0-9]+', '_', card.lower()).strip('_')
    out = Path(args.out or ROOT / 'benchmarks' / 'results' / f'bench_gpu_{slug}.md')
    trt = importlib.util.find_spec('tensorrt') is not None
    info = (f'{card}, CUDA {torch.version.cuda}, torch {torch.__version__}, TensorRT '
            f'{"installed" if trt else "not installed"}')
    print(info)
    print(HEADER)
    lines, skipped, took = run(args)
    text = '\n'.join([
        '# bench_gpu: EfficientMFD on a GPU', '',
        f'- {info}; {datetime.datetime.now().astimezone().isoformat(timespec="seconds")}; '
        f'`python benchmarks/bench_gpu.py --frames {args.frames}` ({took:.0f} s)',
        '- Latency: CUDA events around FusionDetector.infer (upload, network, postprocess, copy '
        'to host), after 10 warm-up frames; stage columns are medians in ms. Peak MiB: torch '
        'allocator. Parity: fp32 top detections matched (same class, IoU >= 0.5) within 2 px '
        'and 0.02.',
        '- Baseline, the paper setting: efficientmfd_r50 (ResNet-50, 500 proposals) at 1024x768; '
        'the upstream code runs it at 7.4 FPS on an A100 in fp32. Goals on an H100: lite with '
        'fusion at 640x512 >= 200 FPS; paper setting >= 30 FPS.', '',
        HEADER, *lines, ''] + ([f'Skipped (time budget): {", ".join(skipped)}', ''] if skipped
                               else []))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
