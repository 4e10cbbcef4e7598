"""The paper's Table 3 ablation on our data: fusion-only, detection-only, joint, joint + GMTA.

Every arm trains the lite model from the same seed, data and iteration budget, differing only in
the task and in whether GMTA aligns the shared gradients (with the paper's s_min scale, and with
the `rms` scale that keeps the summed gradient's length). The budget is a CPU-sized one (short
runs at a reduced input size), so read the table as a comparison between arms, not as the
accuracy the full recipe reaches. Writes `benchmarks/results/gmta_ablation.md` and the raw
summaries beside it.

    ./dev run python benchmarks/gmta_ablation.py [--iterations 60] [--size 256 320]
"""
import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = Path(__file__).resolve().parents[1]
ARMS = (
    ('fusion only', ['--task=fusion', '--gmta.interval=0']),
    ('detection only', ['--task=detection', '--gmta.interval=0']),
    ('joint, summed loss', ['--task=joint', '--gmta.interval=0']),
    ('joint + GMTA', ['--task=joint', '--gmta.interval=1', '--gmta.scale=min']),
    ('joint + GMTA, rms scale', ['--task=joint', '--gmta.interval=1', '--gmta.scale=rms']),
)
FUSION_KEYS = ('en', 'sd', 'sf', 'mi', 'qabf', 'ssim')


def run_arm(name, extra, args, model_cfg, work):
    out = work / name.replace(' ', '_').replace(',', '').replace('+', 'plus')
    cmd = [sys.executable, '-m', 'efficientmfd_ros.tools.train',
           '--config', str(ROOT / 'config/train/lite_llvip.yaml'),
           f'--model_config={model_cfg}', f'--output_dir={out}',
           f'--schedule.iterations={args.iterations}', '--schedule.warmup_iters=10',
           f'--schedule.milestones=[{int(args.iterations * 0.8)}]',
           f'--data.batch_size={args.batch}', '--data.num_workers=0',
           f'--eval.interval={args.iterations}',
           f'--runtime.checkpoint_interval={args.iterations}',
           '--runtime.tensorboard=false', *extra]
    print(f'== {name}: {" ".join(extra)}', flush=True)
    started = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True)
    summary = json.loads((out / 'summary.json').read_text())
    summary['wall_s'] = time.monotonic() - started
    return summary


def fmt(value, digits=3):
    return '-' if value is None else f'{value:.{digits}f}'


def table(rows, args):
    lines = [
        f'# GMTA ablation (lite model, {args.size[0]}x{args.size[1]}, '
        f'{args.iterations} iterations, batch {args.batch}, seed 0, CPU)', '',
        'Train: LLVIP 010001-010032 (labelled) + unlabelled LLVIP and RoadScene pairs (fusion '
        'loss). Validation: LLVIP 010033-010040. Same seed, data order and budget in every '
        'arm.', '',
        '| arm | AP50 | AP50:95 | ' + ' | '.join(FUSION_KEYS) + ' | s/iter | peak RSS (GiB) |',
        '|---' * (5 + len(FUSION_KEYS)) + '|',
    ]
    for name, s in rows:
        final = s.get('final_metrics', {})
        fusion = final.get('fusion', {})
        cells = [name, fmt(final.get('map50')), fmt(final.get('map50_95'))]
        cells += [fmt(fusion.get(k)) for k in FUSION_KEYS]
        cells += [fmt(s.get('seconds_per_step'), 2), fmt(s.get('peak_memory_bytes', 0) / 2**30, 2)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Detection-only and fusion-only arms still run the whole network forward (the '
              'unused branch is not trained), so their time per iteration is not a pure cost of '
              'one task. Fusion metrics are means over the validation pairs at the network input '
              'size; the fusion-only arm has no trained detector (AP near 0) and the '
              'detection-only arm no trained fusion decoder.']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, default=60)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, default=(256, 320), metavar=('H', 'W'))
    parser.add_argument('--out', default=str(ROOT / 'benchmarks/results/gmta_ablation.md'))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='gmta_ablation_') as tmp:
        work = Path(tmp)
        model_cfg = yaml.safe_load((ROOT / 'config/model/efficientmfd_lite.yaml').read_text())
        model_cfg['input_size'] = list(args.size)
        model_path = work / 'model.yaml'
        model_path.write_text(yaml.safe_dump(model_cfg))
        rows = [(name, run_arm(name, extra, args, model_path, work)) for name, extra in ARMS]
    text = table(rows, args)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix('.json').write_text(json.dumps(dict(rows), indent=2, default=str))
    print(text)


if __name__ == '__main__':
    main()
