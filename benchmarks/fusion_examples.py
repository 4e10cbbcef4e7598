"""A picture to judge the fusion by eye: rows of (RGB, thermal, pixel maximum, model).

    ./dev run python benchmarks/fusion_examples.py [--source synthetic|val] [--weights W]
        [--out PNG]

`--source synthetic` (default, the committed `docs/images/fusion_examples.png`): four night frames
of the project's own rendered street (`bags/synthetic_scene.py`: dark RGB, warm pedestrians and
engines). `--source val`: two RoadScene validation pairs (the first and the 16th of the held-out
FLIR_09416 onwards) and two LLVIP validation frames (010033, 010037), fixed in advance, never
chosen by their look. The data's terms forbid committing images derived from its pixels, so the
val picture is for looking at locally (its default path, `runs/fusion_examples_val.png`, is
ignored by git). The model's column is the node's fused output (`FusionDetector.infer`).
"""
import argparse
from pathlib import Path
import sys

import cv2
import numpy as np

from efficientmfd_ros.evaluation.dataset import baseline_fused
from efficientmfd_ros.runtime.detector import load_detector

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
TILE_W = 256
COLUMNS = ('RGB', 'thermal', 'pixel maximum', 'model')
ROADSCENE_VAL_FIRST = 'FLIR_09416'


def synthetic_pairs():
    from efficientmfd_ros.bags.synthetic_scene import render_sequence
    frames = render_sequence(num_frames=40, width=640, height=512, seed=3)
    return [(f.name, f.rgb, f.thermal) for f in frames[::10]]


def _read(root: Path, pair_id: str):
    rgb_path = next((root / 'visible').glob(f'{pair_id}.*'))
    thermal_path = next((root / 'infrared').glob(f'{pair_id}.*'))
    rgb = cv2.cvtColor(cv2.imread(str(rgb_path)), cv2.COLOR_BGR2RGB)
    thermal = cv2.imread(str(thermal_path), cv2.IMREAD_GRAYSCALE)
    if thermal.shape != rgb.shape[:2]:
        thermal = cv2.resize(thermal, rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return rgb, thermal


def val_pairs():
    if not DATA.is_dir():
        sys.exit(f'fusion_examples: {DATA} is absent; --source val needs ../shared/data')
    road = DATA / 'roadscene'
    ids = sorted(p.stem for p in (road / 'visible').iterdir() if p.stem >= ROADSCENE_VAL_FIRST)
    pairs = [(f'RoadScene {i}', *_read(road, i)) for i in (ids[0], ids[15])]
    pairs += [(f'LLVIP {i}', *_read(DATA / 'llvip_person', i)) for i in ('010033', '010037')]
    return pairs


def _tile(image: np.ndarray, label: str) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h = round(image.shape[0] * TILE_W / image.shape[1])
    tile = cv2.resize(image, (TILE_W, h), interpolation=cv2.INTER_AREA)
    (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(tile, (0, 0), (text_w + 8, text_h + 10), (0, 0, 0), thickness=-1)
    cv2.putText(tile, label, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def render(detector, pairs) -> np.ndarray:
    """The figure as uint8 RGB: one row per pair, `COLUMNS` left to right."""
    rows = []
    for name, rgb, thermal in pairs:
        fused = detector.infer(rgb, thermal, fuse=True).fused
        images = (rgb, thermal, baseline_fused(rgb, thermal, 'maximum'), fused)
        labels = (f'{COLUMNS[0]}: {name}', *COLUMNS[1:])
        tiles = [_tile(img, label) for img, label in zip(images, labels)]
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source', choices=('synthetic', 'val'), default='synthetic')
    parser.add_argument('--weights', default=str(ROOT / 'models' / 'efficientmfd_lite_llvip.pt'))
    parser.add_argument('--out', help='PNG path (default: docs/images/fusion_examples.png for '
                                      'synthetic, runs/fusion_examples_val.png for val)')
    args = parser.parse_args(argv)
    default = (ROOT / 'docs' / 'images' / 'fusion_examples.png' if args.source == 'synthetic'
               else ROOT / 'runs' / 'fusion_examples_val.png')
    out = Path(args.out) if args.out else default
    detector = load_detector(args.weights, backend='torch', device='cpu')
    pairs = synthetic_pairs() if args.source == 'synthetic' else val_pairs()
    figure = render(detector, pairs)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR)):
        sys.exit(f'fusion_examples: cannot write {out}')
    print(f'wrote {out} ({figure.shape[1]}x{figure.shape[0]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
