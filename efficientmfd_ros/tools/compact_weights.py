"""`efficientmfd_compact_weights --weights IN.pt --out OUT.pt`: a float16 copy for deployment.

Training writes float32 checkpoints (they resume and fine-tune). A deployed model needs half the
bytes: this rewrites the weights as float16 and keeps every other key (model config, class names,
train config, metrics), then reloads both files and reports how far the detections of one
deterministic random input moved. The runtime loads the copy into float32 modules as usual.
`--num-proposals N` also sets how many noise boxes the deployed model draws per image: the head
takes any number of boxes, so, as in DiffusionDet, inference may use more than training did;
`--input-size H W` the network input it runs at (a convolutional network: a file trained with
scale jitter at one size may deploy at a nearby smaller one where the CPU budget needs it).
Exit status: 0 written, 2 bad input.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='efficientmfd_compact_weights',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='float32 checkpoint (.pt)')
    parser.add_argument('--out', required=True, help='where to write the float16 copy')
    parser.add_argument('--num-proposals', type=int, default=None, metavar='N',
                        help='noise boxes per image at inference (default: as trained)')
    parser.add_argument('--input-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='network input the deployed model runs at, multiples of 32 '
                             '(default: as trained)')
    return parser.parse_args(argv)


def output_drift(model_a, model_b) -> tuple[float, float]:
    """`(box_px, score)`: the largest |difference| of the final-stage boxes (xyxy pixels) and
    sigmoid scores of two models on one seeded random input pair at the models' input size."""
    import torch
    h, w = model_a.cfg.input_size
    gen = torch.Generator().manual_seed(0)
    rgb, thermal = torch.rand(1, 3, h, w, generator=gen), torch.rand(1, 1, h, w, generator=gen)
    noise = model_a.make_noise_boxes(1)
    with torch.no_grad():
        out_a, out_b = model_a(rgb, thermal, noise), model_b(rgb, thermal, noise)
    box_px = float((out_a[1] - out_b[1]).abs().max())
    score = float((out_a[0].sigmoid() - out_b[0].sigmoid()).abs().max())
    return box_px, score


def main(argv=None) -> int:
    args = parse_args(argv)
    from pathlib import Path

    import torch

    from efficientmfd_ros.model import CheckpointError, load_checkpoint, save_checkpoint
    from efficientmfd_ros.model.config import ModelConfigError
    from efficientmfd_ros.model.factory import REQUIRED_KEYS
    try:
        model, cfg, ckpt = load_checkpoint(args.weights)
        extra = {k: v for k, v in ckpt.items() if k not in REQUIRED_KEYS or k == 'train_config'}
        if args.num_proposals is not None:
            cfg = cfg.with_num_proposals(args.num_proposals)
        if args.input_size is not None:
            cfg = cfg.with_input_size(args.input_size)
        out = save_checkpoint(args.out, model, cfg, extra=extra, weights_dtype=torch.float16)
        compact, _, _ = load_checkpoint(out)
    except (CheckpointError, ModelConfigError, ValueError, OSError) as exc:
        print(f'efficientmfd_compact_weights: error: {exc}', file=sys.stderr)
        return 2
    size_in, size_out = Path(args.weights).stat().st_size, out.stat().st_size
    box_px, score = output_drift(model, compact)
    print(f'efficientmfd_compact_weights: wrote {out} ({size_out / 1e6:.1f} MB, '
          f'{size_in / 1e6:.1f} MB before, {cfg.head.num_proposals} proposals, input '
          f'{cfg.input_size[0]}x{cfg.input_size[1]}); largest change '
          f'on a test input: boxes {box_px:.3g} px, scores {score:.3g}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
