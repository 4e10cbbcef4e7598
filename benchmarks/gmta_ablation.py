"""The paper's Table 3 ablation on our data: fusion only, detection only, the plain summed loss,
GMTA with the paper's s_min scale every 1000 iterations, GMTA with the rms scale every step.

Every arm trains the lite model (`config/train/lite_llvip.yaml`) with the same data, input size,
iteration budget and schedule (warm-up, then cosine decay), differing only in the task and in
how GMTA aligns the shared gradients. The two single-task arms run one seed, the three joint
arms `--seeds` (two by default). With `--init-weights` every arm starts from the same trained
checkpoint (a budget where detection scores something on 2 CPU cores); without, from the
ImageNet backbone. Detection AP is the mean over 5 noise draws on LLVIP 010033-010040.

    ./dev run python benchmarks/gmta_ablation.py [--iterations 200] [--size 384 480]
        [--init-weights models/efficientmfd_lite_llvip.pt] [--seeds 0 1]
        [--work-dir runs/gmta_ablation] [--out benchmarks/results/gmta_ablation.md]
        [--only RUN ...]

Resumable: each run keeps its own folder under `--work-dir`; a run with a `summary.json` is not
run again, one with only a `last.pt` continues from it (`efficientmfd_train --resume`). Every
finished run's summary is also written to the folder named like `--out` without its suffix
(`benchmarks/results/gmta_ablation/<run>.json`, committed), and a run found there is not run
again either, so a table too long for one session is finished by the next from a fresh clone.
`--only` runs just the named runs (`joint_plain_sum_s1`; two processes given disjoint lists
share the cores); the table is written with every run finished so far, `-` for the rest.
"""
import argparse
import json
from pathlib import Path
import re
import subprocess
import sys
import time

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
JOINT = ('--task=joint',)
ARMS = (  # (name, trainer arguments, joint: run every seed)
    ('fusion only', ('--task=fusion', '--gmta.interval=0'), False),
    ('detection only', ('--task=detection', '--gmta.interval=0'), False),
    ('joint, plain sum', (*JOINT, '--gmta.interval=0'), True),
    ('joint + GMTA min, every 1000 its (paper)',
     (*JOINT, '--gmta.interval=1000', '--gmta.scale=min'), True),
    ('joint + GMTA rms, every step', (*JOINT, '--gmta.interval=1', '--gmta.scale=rms'), True),
)
FUSION_KEYS = ('en', 'sd', 'sf', 'mi', 'qabf', 'ssim')


def slug(name: str) -> str:
    return re.sub(r'[^0-9A-Za-z]+', '_', name).strip('_')


def run_name(name: str, seed: int) -> str:
    return f'{slug(name)}_s{seed}'


def run_arm(name, extra, seed, args, model_cfg) -> dict | None:
    """The run's summary: read back when it finished before, None when `--only` skips it."""
    out = Path(args.work_dir) / run_name(name, seed)
    kept = Path(args.out).with_suffix('') / f'{run_name(name, seed)}.json'
    for done in (kept, out / 'summary.json'):
        if done.exists():
            print(f'== {name}, seed {seed}: done before ({done})', flush=True)
            return json.loads(done.read_text())
    if args.only and run_name(name, seed) not in args.only:
        return None
    cmd = [sys.executable, '-m', 'efficientmfd_ros.tools.train',
           '--config', str(ROOT / 'config/train/lite_llvip.yaml'),
           f'--model_config={model_cfg}', f'--output_dir={out}', f'--seed={seed}',
           f'--schedule.iterations={args.iterations}', f'--schedule.warmup_iters={args.warmup}',
           '--schedule.policy=cosine', '--schedule.min_lr_factor=0.05',
           f'--optim.lr={args.lr}', f'--optim.backbone_lr={args.lr / 4}',
           f'--data.batch_size={args.batch}', '--data.num_workers=0',
           f'--eval.interval={args.iterations}', '--eval.noise_seeds=[0,1,2,3,4]',
           f'--runtime.checkpoint_interval={min(args.iterations, 50)}',
           '--runtime.tensorboard=false',
           *extra]
    if args.init_weights:
        cmd.append(f'--init_weights={Path(args.init_weights).resolve()}')
    if (out / 'last.pt').exists():
        cmd.append('--resume')
    print(f'== {name}, seed {seed}: {" ".join(extra)}', flush=True)
    started = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True)
    summary = json.loads((out / 'summary.json').read_text())
    summary['wall_s'] = time.monotonic() - started
    (out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(summary, indent=2, default=str) + '\n')
    return summary


def fmt(value, digits=3) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def table(rows, args) -> str:
    """`rows`: (arm name, [summary per seed], [seed]) in ARMS order."""
    start = (f'from `{args.init_weights}`' if args.init_weights else 'from the ImageNet backbone')
    lines = [
        f'# GMTA ablation (lite model, {args.size[0]}x{args.size[1]}, {args.iterations} '
        f'iterations, batch {args.batch}, {args.proposals} proposals, lr {args.lr:g} cosine, '
        f'{start}, CPU)', '',
        'Train: LLVIP 010001-010032 (labelled) + unlabelled LLVIP and RoadScene pairs (fusion '
        'loss). Validation: LLVIP 010033-010040, detection AP the mean of 5 noise draws. Same '
        'data, budget and schedule in every arm; the joint arms are means over the seeds listed.',
        '', '| arm | seeds | AP50 | AP50 per seed | AP50:95 | ' + ' | '.join(FUSION_KEYS)
        + ' | s/iter |', '|---' * (5 + len(FUSION_KEYS) + 1) + '|']
    for name, summaries, seeds in rows:
        finals = [s.get('final_metrics', {}) if s else {} for s in summaries]
        fusion = [f.get('fusion', {}) for f in finals]
        cells = [name, ' '.join(str(s) for s in seeds),
                 fmt(mean([f.get('map50') for f in finals])),
                 ' / '.join(fmt(f.get('map50')) for f in finals),
                 fmt(mean([f.get('map50_95') for f in finals]))]
        cells += [fmt(mean([f.get(k) for f in fusion])) for k in FUSION_KEYS]
        cells.append(fmt(mean([s.get('seconds_per_step') for s in summaries if s]), 2))
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Detection-only and fusion-only arms still run the whole network forward (the '
              'unused branch is not trained), so their time per iteration is not a pure cost of '
              'one task. Fusion metrics are means over the validation pairs at the network input '
              'size.']
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iterations', type=int, default=200)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--lr', type=float, default=1e-4)
    parser.add_argument('--warmup', type=int, default=10, help='warm-up iterations')
    parser.add_argument('--size', type=int, nargs=2, default=(384, 480), metavar=('H', 'W'))
    parser.add_argument('--proposals', type=int, default=100,
                        help='noise boxes per image in training and validation')
    parser.add_argument('--init-weights', help='every arm starts from this checkpoint')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1],
                        help='seeds of the joint arms (the single-task arms run the first)')
    parser.add_argument('--work-dir', default=str(ROOT / 'runs/gmta_ablation'))
    parser.add_argument('--out', default=str(ROOT / 'benchmarks/results/gmta_ablation.md'))
    parser.add_argument('--only', nargs='+', metavar='RUN',
                        help='run only these (arm slug + _s<seed>, e.g. joint_plain_sum_s1)')
    args = parser.parse_args(argv)
    names = {run_name(name, seed) for name, _, joint in ARMS
             for seed in (args.seeds if joint else args.seeds[:1])}
    if args.only and set(args.only) - names:
        parser.error(f'unknown run(s) {sorted(set(args.only) - names)}; runs: {sorted(names)}')
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model_cfg = yaml.safe_load((ROOT / 'config/model/efficientmfd_lite.yaml').read_text())
    model_cfg['input_size'] = list(args.size)
    model_cfg.setdefault('head', {})['num_proposals'] = args.proposals
    model_path = work / 'model.yaml'
    model_path.write_text(yaml.safe_dump(model_cfg))
    rows = []
    for name, extra, joint in ARMS:
        seeds = list(args.seeds) if joint else list(args.seeds[:1])
        rows.append((name, [run_arm(name, extra, seed, args, model_path) for seed in seeds],
                     seeds))
    text = table(rows, args)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix('.json').write_text(json.dumps(
        {'settings': vars(args), 'runs': {f'{name} / seed {seed}': s for name, runs, seeds in rows
                                          for seed, s in zip(seeds, runs) if s}},
        indent=2, default=str) + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
