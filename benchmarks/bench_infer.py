"""Inference cost of both model configs: parameters, GMACs and median latency per stage.

    ./dev run python benchmarks/bench_infer.py [--reps 3] [--size 640x512] [--out FILE]

For `config/model/efficientmfd_lite.yaml` and `efficientmfd_r50.yaml` at one input size (w x h,
default 640x512, given to the network unresized): random-init weights (timing does not depend on
them), the torch backend through `FusionDetector.infer` exactly as the node calls it, fusion on and
off. Stages: preprocess (upload, normalization), backbone x2 (the shared backbone over RGB and
thermal, plus the FPN), fusion (ORPPT decoder and colour), head (CFDP, one DDIM step), postprocess
(top-k, NMS, undoing the resize, copy to host). GMACs are counted with FlopCounterMode
(convolutions, matmuls, attention; RoIAlign, resampling and elementwise ops are not counted) and
halved. On the CPU, stages are timed with perf_counter; where
CUDA is present, CUDA fp32 and fp16 (autocast) rows are added, timed with CUDA events.
"""
import argparse
import datetime
import os
from pathlib import Path
import platform
import statistics
import sys

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from efficientmfd_ros.model import ModelConfig, build_model
from efficientmfd_ros.model.color import fused_to_rgb
from efficientmfd_ros.runtime.backend_torch import TorchBackend
from efficientmfd_ros.runtime.detector import FusionDetector
from efficientmfd_ros.runtime.postprocess import PostprocessConfig
from efficientmfd_ros.runtime.preprocess import PreprocessConfig

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = ('efficientmfd_lite', 'efficientmfd_r50')
STAGES = ('preprocess', 'backbone', 'fusion', 'head', 'postprocess', 'total')


def load_config(name: str, hw) -> ModelConfig:
    cfg = ModelConfig.from_yaml(ROOT / 'config' / 'model' / f'{name}.yaml')
    return ModelConfig.from_dict({**cfg.to_dict(), 'input_size': list(hw)})


def gmacs(model, hw) -> dict:
    """GMACs per stage for one (rgb, thermal) pair at ``hw``."""
    rgb, thermal = torch.rand(1, 3, *hw), torch.rand(1, 1, *hw)
    noise = model.make_noise_boxes(1)
    out = {}
    with torch.inference_mode():
        for stage in ('backbone', 'fusion', 'head'):
            counter = FlopCounterMode(display=False)
            with counter:
                if stage == 'backbone':
                    feats = model.extract(rgb, thermal)
                elif stage == 'fusion':
                    fused_to_rgb(model.fuse(rgb, thermal, feats), rgb)
                else:
                    model.detect(feats, hw, noise)
            out[stage] = counter.get_total_flops() / 2e9
    return out


def time_detector(det, reps: int, fuse: bool) -> dict:
    """Median ms per stage over ``reps`` frames (after one warm-up frame)."""
    h, w = det.input_size
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    thermal = rng.integers(0, 65536, (h, w), dtype=np.uint16)
    det.infer(rgb, thermal, fuse=fuse)
    runs = [det.infer(rgb, thermal, fuse=fuse).timings_ms for _ in range(reps)]
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in STAGES}


def bench(name, hw, reps, targets):
    cfg = load_config(name, hw)
    torch.manual_seed(0)
    model = build_model(cfg, load_backbone_weights=False).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    macs = gmacs(model, hw)
    rows = []
    for device, precision in targets:
        torch.manual_seed(0)
        fresh = build_model(cfg, load_backbone_weights=False)
        det = FusionDetector(TorchBackend(fresh, device, precision), PreprocessConfig(hw),
                             PostprocessConfig())
        for fuse in (True, False):
            ms = time_detector(det, reps, fuse)
            total_macs = macs['backbone'] + macs['head'] + (macs['fusion'] if fuse else 0.0)
            rows.append({'config': name, 'device': f'{device} {precision}', 'fusion': fuse,
                         'params_m': params, 'gmacs': macs, 'gmacs_total': total_macs, 'ms': ms})
            print(format_row(rows[-1]), flush=True)
        del det, fresh
    return rows


HEADER = ('| config | device | fusion | params (M) | GMACs backbone x2 / fusion / head / total | '
          'preprocess | backbone x2 | fusion | head | postprocess | total ms | FPS |\n'
          '|---|---|---|---|---|---|---|---|---|---|---|---|')


def format_row(row) -> str:
    m, g = row['ms'], row['gmacs']
    fusion_ms = f'{m["fusion"]:.1f}' if row['fusion'] else '-'
    fusion_g = f'{g["fusion"]:.2f}' if row['fusion'] else '-'
    return (f'| {row["config"]} | {row["device"]} | {"on" if row["fusion"] else "off"} | '
            f'{row["params_m"]:.1f} | {g["backbone"]:.1f} / {fusion_g} / {g["head"]:.1f} / '
            f'{row["gmacs_total"]:.1f} | {m["preprocess"]:.1f} | {m["backbone"]:.1f} | '
            f'{fusion_ms} | {m["head"]:.1f} | {m["postprocess"]:.1f} | {m["total"]:.1f} | '
            f'{1e3 / m["total"]:.2f} |')


def machine() -> str:
    cpu = platform.processor() or 'unknown CPU'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    load = ', '.join(f'{v:.1f}' for v in os.getloadavg())
    return (f'CPU: {cpu}, {os.cpu_count()} logical cores, torch threads: '
            f'{torch.get_num_threads()}; GPU: {gpu}; torch {torch.__version__}; '
            f'Python {platform.python_version()}; load average {load} (other work competes for '
            'the cores when it is above 0)')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--reps', type=int, default=3, help='timed frames per row (median)')
    parser.add_argument('--size', default='640x512', help='network input WxH')
    parser.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' /
                                             'bench_infer_cpu.md'))
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split('x'))
    targets = [('cpu', 'fp32')]
    if torch.cuda.is_available():
        targets += [('cuda', 'fp32'), ('cuda', 'fp16')]
    start = machine()
    print(start)
    print(HEADER)
    rows = []
    for name in args.configs:
        rows += bench(name, (h, w), args.reps, targets)
    text = '\n'.join([
        f'# bench_infer: EfficientMFD inference cost at {w}x{h} (w x h)', '',
        f'- at the start: {start}', f'- at the end: {machine()}',
        f'- {datetime.datetime.now().astimezone().isoformat(timespec="seconds")}; '
        f'`python benchmarks/bench_infer.py --reps {args.reps} --size {args.size}`',
        f'- Median of {args.reps} frames after one warm-up, random-init weights, torch backend '
        'via FusionDetector.infer (the node\'s call), times in ms. "backbone x2" is the shared '
        'backbone over RGB and thermal plus the FPN. GMACs count convolutions, matmuls and '
        'attention (FlopCounterMode / 2), not RoIAlign, resampling or elementwise ops.', '',
        HEADER, *[format_row(r) for r in rows], ''])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
