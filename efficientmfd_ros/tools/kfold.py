"""`efficientmfd_kfold --config C.yaml --folds K --out DIR [--frames A..B] [--key=value ...]`.

Cross-validates a training recipe (`efficientmfd_ros/train/kfold.py`): K runs of
`efficientmfd_train`, fold j validating on the j-th contiguous block of the labelled frames and
training on the rest, each in `DIR/fold<j>/` with its config `DIR/fold<j>.yaml`; then
`DIR/kfold.json` and `DIR/kfold.md` with AP50 and AP50:95 per fold and their mean and std.
`--key=value` overrides go to every fold's trainer. Resumable: a fold with a `summary.json` is
not run again, one with a `last.pt` continues from it; `--only 0 2` runs just those folds (two
processes given disjoint lists share the cores), the table counting every fold finished so far.
`--frames` defaults to the labelled training set's ids plus the validation ids of the same folder.
Exit status: 0 done, 1 a fold's training failed, 2 bad arguments or configuration.
"""
import argparse
import json
from pathlib import Path
import subprocess
import sys

import yaml

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.train import kfold
from efficientmfd_ros.train.data.spec import DatasetError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='efficientmfd_kfold', description=__doc__.split('\n\n')[0],
        epilog='Any other --key=value overrides a train config key in every fold.')
    parser.add_argument('--config', required=True, help='train config YAML (the recipe)')
    parser.add_argument('--folds', type=int, default=5, help='number of folds (default 5)')
    parser.add_argument('--out', required=True, help='folder for the folds and the report')
    parser.add_argument('--frames', default=None,
                        help="ids of the labelled set to fold: a range 'first..last', an id-list "
                             'file or comma-separated ids (default: train + val ids)')
    parser.add_argument('--only', type=int, nargs='+', default=None, metavar='FOLD',
                        help='run only these folds (0-based)')
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not (o.startswith('--') and '=' in o)]
    if bad:
        parser.error(f'unrecognised arguments {bad}: overrides look like --key=value')
    refused = kfold.refused_overrides(overrides)
    if refused:
        parser.error(f'{refused}: each fold sets {", ".join(kfold.FOLD_KEYS)} itself')
    return args, overrides


def _frames(base, given):
    if given is None:
        return kfold.default_frames(base)
    spec = base['data']['train'][kfold.labelled_entry(base)]
    split = given.split(',') if ',' in given else given
    return kfold.dataset_ids(spec, split)


def _run_fold(path, out, overrides):
    """The final metrics of the fold run in `out`, training it (or resuming it) first when it has
    no summary; None when its training fails."""
    summary = out / 'summary.json'
    if not summary.is_file():
        cmd = [sys.executable, '-m', 'efficientmfd_ros.tools.train', '--config', str(path),
               *overrides]
        if (out / 'last.pt').is_file():
            cmd.append('--resume')
        print(f'efficientmfd_kfold: {" ".join(cmd)}', flush=True)
        if subprocess.run(cmd).returncode != 0:
            return None
    return json.loads(summary.read_text()).get('final_metrics') or {}


def main(argv=None) -> int:
    args, overrides = parse_args(argv)
    out = Path(args.out)
    try:
        base = yaml.safe_load(Path(args.config).read_text()) or {}
        frames = _frames(base, args.frames)
        configs = kfold.fold_configs(base, frames, args.folds, out)
    except (OSError, yaml.YAMLError, KeyError, ConfigError, DatasetError, ValueError) as exc:
        print(f'efficientmfd_kfold: {exc}', file=sys.stderr)
        return 2
    if args.only and not all(0 <= j < len(configs) for j in args.only):
        print(f'efficientmfd_kfold: --only {args.only}: folds are 0..{len(configs) - 1}',
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    results, failed = [], []
    for j, (cfg, _) in enumerate(configs):
        path = out / f'fold{j}.yaml'
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        run = Path(cfg['output_dir'])
        if args.only is not None and j not in args.only and not (run / 'summary.json').is_file():
            results.append(None)
            continue
        metrics = _run_fold(path, run, overrides)
        if metrics is None:
            failed.append(j)
        results.append(metrics)
    held_out = [ids for _, ids in configs]
    summary = kfold.summarise(results)
    report = {'config': str(args.config), 'overrides': overrides, 'frames': frames,
              'held_out': held_out, 'summary': summary,
              'final_metrics': results}
    (out / 'kfold.json').write_text(json.dumps(report, indent=2, default=str) + '\n')
    title = ' '.join([f'`{args.config}`', *overrides])
    text = f'# {args.folds}-fold cross-validation of {title}\n\n' + kfold.table(summary, held_out)
    (out / 'kfold.md').write_text(text)
    print(text)
    if failed:
        print(f'efficientmfd_kfold: training failed in fold(s) {failed}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
