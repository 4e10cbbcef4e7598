"""Detection AP of one or more checkpoints over several noise draws, side by side.

    ./dev run python benchmarks/detection_draws.py --weights A.pt [B.pt ...]
        [--range 010033..010040] [--seeds 0 1 2 3 4] [--num-proposals 100]
        [--blank none rgb thermal] [--input-size H W] [--json OUT]

Each checkpoint is scored on the same frames with the trainer's validation code
(`train/validation.py`: frames resized to the network input, boxes scored there with
pycocotools), once per noise draw; `--blank rgb` feeds the RGB camera as zeros (the node's
degraded mode), `thermal` likewise; `--input-size` scores at another network input than the
checkpoint's (the network is convolutional, boxes are read at the tensor's size). Prints
per-draw AP50, the mean and spread (max - min) of AP50 and the mean AP50:95, per checkpoint and
blanking; `--json` writes the same numbers.
"""
import argparse
from contextlib import nullcontext
import json
from pathlib import Path
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from efficientmfd_ros.model import load_checkpoint
from efficientmfd_ros.train.config import EvalConfig
from efficientmfd_ros.train.data.augment import PairCollate, resize_to
from efficientmfd_ros.train.data.paired import build_datasets
from efficientmfd_ros.train.validation import evaluate

ROOT = Path(__file__).resolve().parents[1]
LLVIP = ROOT.parent / 'shared' / 'data' / 'llvip_person'


class Blanked:
    """Batches of `loader` with one camera's images replaced by zeros (or none)."""

    def __init__(self, loader, blank: str):
        self.loader, self.blank = loader, blank

    def __iter__(self):
        for batch in self.loader:
            if self.blank != 'none':
                batch = {**batch, self.blank: torch.zeros_like(batch[self.blank])}
            yield batch


def score(weights, data, id_range, seeds, num_proposals, blanks, input_size=None) -> dict:
    model, cfg, _ = load_checkpoint(weights)
    size = tuple(input_size) if input_size else tuple(cfg.input_size)
    spec = {'root': str(data), 'name': 'frames', 'label_format': 'voc', 'split': id_range,
            'class_names': list(cfg.class_names)}
    loader = DataLoader(build_datasets([spec], resize_to(size)), batch_size=4,
                        collate_fn=PairCollate())
    eval_cfg = EvalConfig(fusion_metrics=(), noise_seeds=tuple(seeds),
                          num_proposals=num_proposals, score_threshold=0.001)
    out = {}
    for blank in blanks:
        m = evaluate(model, Blanked(loader, blank), list(cfg.class_names), eval_cfg,
                     torch.device('cpu'), nullcontext)
        per = m['map50_per_seed']
        out[blank] = {'map50': m['map50'], 'map50_95': m['map50_95'], 'map50_per_seed': per,
                      'map50_spread': float(np.max(per) - np.min(per))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', nargs='+', required=True)
    parser.add_argument('--data', default=str(LLVIP))
    parser.add_argument('--range', dest='id_range', default='010033..010040')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--num-proposals', type=int, default=0,
                        help="noise boxes per image; 0: each checkpoint's own")
    parser.add_argument('--blank', nargs='+', choices=('none', 'rgb', 'thermal'),
                        default=['none'])
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help="network input (multiples of 32); default: each checkpoint's own")
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    results = {}
    print(f'frames {args.id_range}, draws {args.seeds}, proposals '
          f'{args.num_proposals or "own"}')
    print(f'{"weights":<44}{"blank":>8}{"AP50":>7}{"spread":>8}{"AP50:95":>9}  per draw')
    for weights in args.weights:
        results[weights] = score(weights, args.data, args.id_range, args.seeds,
                                 args.num_proposals, args.blank, args.input_size)
        for blank, r in results[weights].items():
            per = ' '.join(f'{v:.3f}' for v in r['map50_per_seed'])
            print(f'{str(weights)[-44:]:<44}{blank:>8}{r["map50"]:>7.3f}'
                  f'{r["map50_spread"]:>8.3f}{r["map50_95"]:>9.3f}  {per}', flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({'settings': vars(args), 'results': results},
                                              indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
