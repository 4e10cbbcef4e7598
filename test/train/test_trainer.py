"""End to end: a few steps of the tiny model on a synthetic paired set, checkpoint, resume."""
import json
import math
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from efficientmfd_ros.model.factory import load_checkpoint, read_checkpoint
from efficientmfd_ros.tools.train import main
from efficientmfd_ros.train.train_state import load_state

VOC_OBJECT = ('<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>'
              '<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>')


def write_pairs(root: Path, ids, rng, labelled=True, hw=(96, 144)):
    """Noise images with one warm 'person' and one 'car' rectangle seen by both cameras."""
    (root / 'visible').mkdir(parents=True)
    (root / 'infrared').mkdir()
    if labelled:
        (root / 'Annotations').mkdir()
    h, w = hw
    for pair_id in ids:
        rgb = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        thermal = rng.integers(0, 60, (h, w), dtype=np.uint8)
        objects = []
        for name, (bw, bh) in (('person', (12, 28)), ('car', (30, 16))):
            x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            rgb[y1:y1 + bh, x1:x1 + bw] = rng.integers(150, 255, 3)
            thermal[y1:y1 + bh, x1:x1 + bw] = 220
            objects.append(VOC_OBJECT.format(name=name, x1=x1, y1=y1, x2=x1 + bw, y2=y1 + bh))
        cv2.imwrite(str(root / 'visible' / f'{pair_id}.png'), rgb[..., ::-1])
        cv2.imwrite(str(root / 'infrared' / f'{pair_id}.png'), thermal)
        if labelled:
            (root / 'Annotations' / f'{pair_id}.xml').write_text(
                f'<annotation><size><width>{w}</width><height>{h}</height></size>'
                f'{"".join(objects)}</annotation>')


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory, project_root):
    """tiny_test.yaml with its data replaced by synthetic sets; returns the config path."""
    base = tmp_path_factory.mktemp('tiny')
    rng = np.random.default_rng(0)
    write_pairs(base / 'labelled', [f'{i:04d}' for i in range(6)], rng)
    write_pairs(base / 'unlabelled', [f'u{i}' for i in range(2)], rng, labelled=False)
    cfg = yaml.safe_load((project_root / 'config/train/tiny_test.yaml').read_text())
    cfg['model_config'] = str(project_root / cfg['model_config'])
    cfg['data']['train'] = [
        {'root': str(base / 'labelled'), 'split': '0000..0003'},
        {'root': str(base / 'unlabelled'), 'labelled': False, 'label_format': 'none'}]
    cfg['data']['val'] = [{'root': str(base / 'labelled'), 'split': '0004..0005'}]
    cfg['data']['augment'] = {'modality_dropout_p': 0.3}
    path = base / 'tiny.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(config, out_dir, *extra):
    return main(['--config', str(config), f'--output_dir={out_dir}', *extra])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# The dataset numbers repeated draws of one item within an epoch in process memory, which a
# resumed run cannot restore; without random augmentation the batches do not depend on it.
STEADY = '--data.augment={hflip_p: 0, scale_range: [1, 1], photometric_p: 0}'


def test_three_steps_checkpoint_and_resume_match_an_uninterrupted_run(tiny_config, tmp_path):
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    assert _train(tiny_config, straight, STEADY) == 0
    state = load_state(straight / 'last.pt')
    assert state['step'] == 3
    logs = [r for r in _lines(straight / 'log.jsonl') if 'loss' in r]
    assert [r['step'] for r in logs] == [1, 2, 3]
    assert all(math.isfinite(r['loss']) and math.isfinite(r['loss_u'])
               and math.isfinite(r['loss_d']) for r in logs)
    gmta = _lines(straight / 'gmta.jsonl')
    assert [r['step'] for r in gmta] == [0, 1, 2]
    aligned = [r for r in gmta if r['fallback'] == '']
    assert aligned, 'no step exercised the SVD alignment'
    for r in aligned:
        assert r['kappa_after'] == pytest.approx(1.0, abs=1e-6) and r['kappa_before'] > 1
    # A batch without labelled images (or without a two-camera image) has one zero task gradient.
    # With a pyramid prior the fusion branch's last layer starts at zero, so on the first step no
    # fusion gradient reaches the shared layers; a batch without labels then has none at all.
    assert all(r['fallback'] in ('', 'zero_d', 'zero_u', 'zero_both') for r in gmta), \
        [r['fallback'] for r in gmta]
    evals = [r['eval'] for r in _lines(straight / 'log.jsonl') if 'eval' in r]
    assert len(evals) == 1 and evals[0]['num_images'] == 2 and 'ssim' in evals[0]['fusion']
    assert 'train' not in evals[0]
    model, cfg, ckpt = load_checkpoint(straight / 'model_final.pt')
    assert ckpt['iteration'] == 3 and ckpt['train_config']['task'] == 'joint'
    assert 'optimizer' not in ckpt and cfg.class_names == ('person', 'car')

    assert _train(tiny_config, split, STEADY, '--schedule.iterations=2') == 0
    assert load_state(split / 'last.pt')['step'] == 2
    assert _train(tiny_config, split, STEADY, '--resume') == 0
    assert load_state(split / 'last.pt')['step'] == 3
    a = read_checkpoint(straight / 'model_final.pt')['model']
    b = read_checkpoint(split / 'model_final.pt')['model']
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    summary = json.loads((split / 'summary.json').read_text())
    assert summary['steps'] == 3 and summary['seconds_per_step'] > 0


@pytest.mark.parametrize('task', ['fusion', 'detection'])
def test_single_task_runs_without_gmta(tiny_config, tmp_path, task):
    out = tmp_path / task
    assert _train(tiny_config, out, f'--task={task}', '--schedule.iterations=1',
                  '--data.val=[]') == 0
    record = [r for r in _lines(out / 'log.jsonl') if 'loss' in r][0]
    assert math.isfinite(record['loss'])
    assert ('loss_u' in record) == (task == 'fusion')
    assert ('loss_d' in record) == (task == 'detection')
    assert not (out / 'gmta.jsonl').exists()


def test_training_frames_are_scored_beside_validation_when_asked(tiny_config, tmp_path):
    """`eval.train_images` scores the labelled training pairs (not the unlabelled ones) too."""
    out = tmp_path / 'curve'
    assert _train(tiny_config, out, '--task=detection', '--schedule.iterations=1',
                  '--eval.train_images=10') == 0
    evals = [r['eval'] for r in _lines(out / 'log.jsonl') if 'eval' in r]
    assert len(evals) == 1 and evals[0]['num_images'] == 2
    on_train = evals[0]['train']
    assert on_train['num_images'] == 4  # the 4 labelled pairs; the 2 unlabelled are left out
    assert 0.0 <= on_train['map50'] <= 1.0 and 0.0 <= on_train['map50_95'] <= on_train['map50']
    assert _train(tiny_config, tmp_path / 'bad', '--eval.train_images=-1') == 2


def test_fusion_warmup_trains_only_the_fusion_branch_and_resumes(tiny_config, tmp_path):
    """The recipe's fusion warm-up: start from trained weights, re-initialise and train the fusion
    branch alone; everything else stays exactly as loaded, across an interruption."""
    base = tmp_path / 'base'
    assert _train(tiny_config, base, '--schedule.iterations=1', '--data.val=[]') == 0
    init = read_checkpoint(base / 'model_final.pt')['model']
    warm = tmp_path / 'warm'
    args = ['--task=fusion', f'--init_weights={base / "model_final.pt"}',
            '--init_exclude=[fusion]', '--trainable_modules=[fusion]', '--data.val=[]',
            '--gmta.interval=0']
    assert _train(tiny_config, warm, *args, '--schedule.iterations=1') == 0
    assert load_state(warm / 'last.pt')['step'] == 1
    assert _train(tiny_config, warm, *args, '--schedule.iterations=3', '--resume') == 0
    assert load_state(warm / 'last.pt')['step'] == 3
    trained = read_checkpoint(warm / 'model_final.pt')['model']
    assert trained.keys() == init.keys()
    for key in init:
        if not key.startswith('fusion.'):
            torch.testing.assert_close(trained[key], init[key], rtol=0, atol=0, msg=key)
    changed = [k for k in init if k.startswith('fusion.') and not torch.equal(trained[k], init[k])]
    assert any('decoder' in k for k in changed)
    assert _train(tiny_config, tmp_path / 'bad', *args[:1], f'--init_weights={base}/x.pt',
                  '--init_exclude=[fuse]') == 2
    assert _train(tiny_config, tmp_path / 'bad2', '--trainable_modules=[fusion]') == 2


def test_joint_without_gmta_sums_the_losses(tiny_config, tmp_path):
    out = tmp_path / 'plain'
    assert _train(tiny_config, out, '--gmta.interval=0', '--schedule.iterations=1',
                  '--data.val=[]') == 0
    record = [r for r in _lines(out / 'log.jsonl') if 'loss' in r][0]
    assert record['loss'] == pytest.approx(record['loss_u'] + record['loss_d'], rel=1e-5)
    assert not (out / 'gmta.jsonl').exists()


def test_bad_arguments_exit_with_status_2(tiny_config, tmp_path, capsys):
    assert _train(tiny_config, tmp_path / 'a', '--optim.lr=fast') == 2
    assert 'optim.lr must be a number' in capsys.readouterr().err
    assert _train(tiny_config, tmp_path / 'b', '--optim.lrr=1') == 2
    assert "unknown key 'optim.lrr'" in capsys.readouterr().err
    assert _train(tiny_config, tmp_path / 'c', '--resume') == 2
    assert 'no training state' in capsys.readouterr().err
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'last.pt').write_bytes(b'')
    assert _train(tiny_config, tmp_path / 'd') == 2
    assert '--resume' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--config', str(tiny_config), 'stray'])


def test_torchrun_two_processes_with_gmta(tiny_config, tmp_path, project_root):
    """DDP on CPU (gloo): ranks whose batches differ in labelled images stay in step."""
    out = tmp_path / 'ddp'
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         '-m', 'efficientmfd_ros.tools.train', '--config', str(tiny_config),
         f'--output_dir={out}', '--schedule.iterations=3', '--data.batch_size=1',
         '--data.val=[]'], cwd=project_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r['step'] for r in _lines(out / 'gmta.jsonl')] == [0, 1, 2]
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['world_size'] == 2 and summary['steps'] == 3


def test_warmup_cosine_schedule_and_ema_on_a_tiny_run_resume_exactly(tiny_config, tmp_path):
    """The recipe's schedule and weight average: the logged lr follows warm-up then cosine, the
    saved weights are the average (not the last step's), and a resumed run ends identical."""
    args = [STEADY, '--schedule.policy=cosine', '--schedule.iterations=4',
            '--schedule.warmup_iters=2', '--schedule.min_lr_factor=0.1', '--ema.decay=0.5',
            '--ema.warmup_steps=0', '--runtime.log_interval=1', '--data.val=[]',
            '--optim.lr=1e-3', '--optim.backbone_lr=1e-3']
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    assert _train(tiny_config, straight, *args) == 0
    logs = [r for r in _lines(straight / 'log.jsonl') if 'loss' in r]
    lrs = [r['lr/rest'] for r in logs]
    # warmup_factor 0.01: step 0 at 1e-5, step 1 halfway; then cosine from 1e-3 towards 1e-4.
    assert lrs[0] == pytest.approx(1e-5) and lrs[1] == pytest.approx(0.505e-3)
    assert lrs[2] == pytest.approx(1e-3) and lrs[3] == pytest.approx(0.55e-3)
    assert all(r['ema_decay'] == 0.5 for r in logs)
    raw = load_state(straight / 'last.pt')
    final = read_checkpoint(straight / 'model_final.pt')['model']
    moved = [k for k in final if final[k].dtype.is_floating_point
             and not torch.equal(final[k], raw['model'][k])]
    assert moved, 'model_final.pt holds the raw weights, not their average'
    for key, value in raw['ema']['module'].items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=0, msg=key)

    # Steps 0-1 are warm-up, whose lr does not depend on the run's length: stop after them.
    two = [a if a != '--schedule.iterations=4' else '--schedule.iterations=2' for a in args]
    assert _train(tiny_config, split, *two) == 0
    assert load_state(split / 'last.pt')['ema']['updates'] == 2
    assert _train(tiny_config, split, *args, '--resume') == 0
    assert load_state(split / 'last.pt')['step'] == 4
    b = read_checkpoint(split / 'model_final.pt')['model']
    for key in final:
        torch.testing.assert_close(b[key], final[key], rtol=1e-5, atol=1e-6, msg=key)
