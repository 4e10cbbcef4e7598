"""Validation during training, on the committed weights and real LLVIP validation frames."""
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from torch.utils.data import DataLoader  # noqa: E402

from efficientmfd_ros.model import load_checkpoint  # noqa: E402
from efficientmfd_ros.train.config import EvalConfig  # noqa: E402
from efficientmfd_ros.train.data.augment import PairCollate, resize_to  # noqa: E402
from efficientmfd_ros.train.data.paired import build_datasets  # noqa: E402
from efficientmfd_ros.train.validation import evaluate  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[2] / 'models' / 'efficientmfd_lite_llvip.pt'


@pytest.fixture(scope='module')
def model_and_loader(llvip_person):
    model, cfg, _ = load_checkpoint(WEIGHTS)
    spec = {'root': str(llvip_person), 'name': 'val', 'label_format': 'voc',
            'split': '010033..010036', 'class_names': list(cfg.class_names)}
    data = build_datasets([spec], resize_to(tuple(cfg.input_size)))
    return model, DataLoader(data, batch_size=2, collate_fn=PairCollate())


def _run(model, loader, seeds, num_proposals=0):
    cfg = EvalConfig(fusion_metrics=(), noise_seeds=tuple(seeds), num_proposals=num_proposals)
    return evaluate(model, loader, ['person'], cfg, torch.device('cpu'), nullcontext)


@pytest.mark.data
@pytest.mark.slow
def test_seed_list_averages_one_evaluation_per_noise_draw(model_and_loader):
    model, loader = model_and_loader
    model.train()
    default = _run(model, loader, ())
    assert 'map50_per_seed' not in default and default['num_images'] == 4
    # The model's own seed, named explicitly, is the default run.
    own = _run(model, loader, (model.cfg.head.noise_seed,))
    assert own['map50'] == pytest.approx(default['map50'], abs=1e-12)
    several = _run(model, loader, (0, 1, 2))
    per_seed = several['map50_per_seed']
    assert len(per_seed) == 3 and per_seed[0] == pytest.approx(default['map50'], abs=1e-12)
    assert several['map50'] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert len(set(per_seed)) > 1  # the draws differ, or the mean would average nothing
    assert min(per_seed) > 0.2  # the committed weights find these pedestrians with any draw
    assert model.training  # left in the mode it came in (training, as the trainer calls it)


@pytest.mark.data
@pytest.mark.slow
def test_num_proposals_sets_the_validation_draw_and_the_mode_is_kept(model_and_loader):
    model, loader = model_and_loader
    model.eval()
    own = _run(model, loader, (0,))
    named = _run(model, loader, (0,), num_proposals=model.num_proposals)
    assert named['map50'] == pytest.approx(own['map50'], abs=1e-12)
    fewer = _run(model, loader, (0, 1), num_proposals=10)
    assert fewer['map50'] < own['map50']  # 10 noise boxes cannot cover these pedestrians
    assert not model.training and not model.head.training
