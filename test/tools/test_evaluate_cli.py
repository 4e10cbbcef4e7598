"""efficientmfd_eval end to end: a tiny random-init checkpoint on real LLVIP and RoadScene
pairs."""
import contextlib
import io
import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch

from efficientmfd_ros.core import metrics_fusion
from efficientmfd_ros.core.metrics_fusion import fusion_metrics
from efficientmfd_ros.evaluation.dataset import FUSION_KEYS
from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
from efficientmfd_ros.tools.evaluate import main

pytestmark = pytest.mark.data
LLVIP_IDS = ('010001', '010002')


@pytest.fixture(scope='module')
def tiny_weights(project_root, tmp_path_factory):
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_tiny_test.yaml')
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.pt', build_model(cfg), cfg)


def _run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args] + ['--device', 'cpu', '--no-progress'])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def llvip_run(tiny_weights, llvip_person, tmp_path_factory):
    """One evaluation of frames 010001-010002 with --save-fused and --baselines."""
    root = tmp_path_factory.mktemp('llvip_eval')
    out, fused = root / 'out', root / 'fused'
    code, stdout, stderr = _run(['--weights', tiny_weights, '--data', llvip_person,
                                 '--range', '..'.join(LLVIP_IDS), '--out', out,
                                 '--save-fused', fused, '--baselines'])
    assert code == 0, stderr
    metrics = json.loads((out / 'metrics.json').read_text())
    return {'out': out, 'fused': fused, 'stdout': stdout, 'metrics': metrics}


def _pair(llvip_person, pair_id):
    rgb = cv2.cvtColor(cv2.imread(str(llvip_person / 'visible' / f'{pair_id}.jpg')),
                       cv2.COLOR_BGR2RGB)
    thermal = cv2.imread(str(llvip_person / 'infrared' / f'{pair_id}.jpg'), cv2.IMREAD_GRAYSCALE)
    return rgb, thermal


def test_metrics_json_and_table(llvip_run):
    m = llvip_run['metrics']
    assert m['labelled'] is True and m['num_pairs'] == 2 and m['num_images'] == 2
    assert 0.0 <= m['map50'] <= 1.0 and 0.0 <= m['map50_95'] <= m['map50']
    assert set(m['per_class']) == {'person', 'car'}
    assert m['per_class']['person']['num_gt'] == m['num_gt'] > 0
    assert m['per_class']['car']['ap50'] is None  # no car in LLVIP
    assert set(m['fusion']) == set(FUSION_KEYS)
    assert all(np.isfinite(m['fusion'][k]) for k in ('en', 'sd', 'mi', 'ssim', 'paper_mi'))
    assert m['settings']['input_size'] == [64, 96] and m['settings']['score_threshold'] == 0.001
    table = llvip_run['stdout']
    for word in ('map50', 'map50_95', 'person', 'model', 'average', 'maximum', *FUSION_KEYS):
        assert word in table


def test_predictions_rescore_with_pycocotools(llvip_run, llvip_person):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out, m = llvip_run['out'], llvip_run['metrics']
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(out / 'ground_truth.json'))
        preds = json.loads((out / 'predictions.json').read_text())
        assert len(preds) == m['num_pred'] > 0
        scorer = COCOeval(gt, gt.loadRes(str(out / 'predictions.json')), 'bbox')
        scorer.evaluate()
        scorer.accumulate()
        scorer.summarize()
    assert scorer.stats[1] == pytest.approx(m['map50'], abs=1e-9)
    assert scorer.stats[0] == pytest.approx(m['map50_95'], abs=1e-9)
    # detections and ground truth are in pixels of the 1280x1024 RGB images
    assert all(p['bbox'][0] + p['bbox'][2] <= 1280 + 1e-3 for p in preds)
    first = gt.loadImgs(1)[0]
    assert (first['file_name'], first['width'], first['height']) == (LLVIP_IDS[0], 1280, 1024)
    voc = ET.parse(llvip_person / 'Annotations' / f'{LLVIP_IDS[0]}.xml').getroot()
    want = sorted([float(o.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
                  for o in voc.iter('object'))
    got = sorted([a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                  a['bbox'][1] + a['bbox'][3]] for a in gt.loadAnns(gt.getAnnIds(imgIds=[1])))
    np.testing.assert_allclose(got, want)


def test_save_fused_writes_the_scored_images(llvip_run, llvip_person):
    fused_dir, m = llvip_run['fused'], llvip_run['metrics']
    assert sorted(p.name for p in fused_dir.iterdir()) == [f'{i}.png' for i in LLVIP_IDS]
    per_pair = []
    for pair_id in LLVIP_IDS:
        fused = cv2.cvtColor(cv2.imread(str(fused_dir / f'{pair_id}.png')), cv2.COLOR_BGR2RGB)
        assert fused.shape == (1024, 1280, 3)
        rgb, thermal = _pair(llvip_person, pair_id)
        per_pair.append({'en': metrics_fusion.en(fused), 'sd': metrics_fusion.sd(fused),
                         'mi': metrics_fusion.mi(rgb, thermal, fused),
                         'qabf': metrics_fusion.qabf(rgb, thermal, fused)})
    for key, values in zip(per_pair[0], zip(*(p.values() for p in per_pair))):
        assert m['fusion'][key] == pytest.approx(np.mean(values), rel=1e-9)


def test_baselines_equal_direct_average(llvip_run, llvip_person):
    """The average baseline, written out here; the maximum one is checked in test/train."""
    baselines = llvip_run['metrics']['baselines']
    scores = []
    for rgb, thermal in (_pair(llvip_person, i) for i in LLVIP_IDS):
        unit = rgb / 255.0
        luma = unit @ np.array([0.299, 0.587, 0.114])
        fused = (luma + thermal / 255.0) / 2.0
        coloured = np.clip(unit + (fused - luma)[..., None], 0.0, 1.0)
        scores.append(fusion_metrics(rgb, thermal, np.round(coloured * 255).astype(np.uint8)))
    for key in FUSION_KEYS:
        want = np.mean([s[key] for s in scores])
        assert baselines['average'][key] == pytest.approx(want, rel=2e-3, abs=1e-3), key
    assert set(baselines['maximum']) == set(FUSION_KEYS)
    assert baselines['average']['sd'] != pytest.approx(baselines['maximum']['sd'])


def test_noise_seed_selects_the_draw_and_is_recorded(llvip_run, tiny_weights, llvip_person,
                                                    tmp_path):
    assert llvip_run['metrics']['settings']['noise_seed'] == 0  # the tiny model's head.noise_seed
    code, _, stderr = _run(['--weights', tiny_weights, '--data', llvip_person,
                            '--range', '..'.join(LLVIP_IDS), '--out', tmp_path, '--noise-seed', 5])
    assert code == 0, stderr
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['settings']['noise_seed'] == 5
    default = json.loads((llvip_run['out'] / 'predictions.json').read_text())
    other = json.loads((tmp_path / 'predictions.json').read_text())
    assert [p['bbox'] for p in default] != [p['bbox'] for p in other]


def test_num_proposals_sets_the_box_count_and_is_recorded(llvip_run, tiny_weights, llvip_person,
                                                          tmp_path):
    own = llvip_run['metrics']['settings']['num_proposals']
    code, _, stderr = _run(['--weights', tiny_weights, '--data', llvip_person,
                            '--range', '..'.join(LLVIP_IDS), '--out', tmp_path,
                            '--num-proposals', own + 4])
    assert code == 0, stderr
    assert json.loads((tmp_path / 'metrics.json').read_text())['settings'][
        'num_proposals'] == own + 4
    code, _, stderr = _run(['--weights', tiny_weights, '--data', llvip_person,
                            '--range', '..'.join(LLVIP_IDS), '--out', tmp_path / 'bad',
                            '--num-proposals', 0])
    assert code == 2 and 'num_proposals must be an integer' in stderr


@pytest.mark.parametrize('blank', ['rgb', 'thermal'])
def test_blank_feeds_one_camera_as_zeros_and_is_recorded(llvip_run, tiny_weights, llvip_person,
                                                         tmp_path, blank):
    code, _, stderr = _run(['--weights', tiny_weights, '--data', llvip_person,
                            '--range', '..'.join(LLVIP_IDS), '--out', tmp_path, '--blank', blank])
    assert code == 0, stderr
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['settings']['blank'] == blank
    assert llvip_run['metrics']['settings']['blank'] is None
    assert metrics['fusion'] != llvip_run['metrics']['fusion']
    default = json.loads((llvip_run['out'] / 'predictions.json').read_text())
    other = json.loads((tmp_path / 'predictions.json').read_text())
    assert [p['score'] for p in default] != [p['score'] for p in other]


def test_unlabelled_roadscene_reports_fusion_only(tiny_weights, roadscene, tmp_path):
    split = tmp_path / 'ids.txt'
    split.write_text('FLIR_00006\n# a comment\nFLIR_00018.jpg\n')
    code, stdout, stderr = _run(['--weights', tiny_weights, '--data', roadscene,
                                 '--split', split, '--out', tmp_path / 'out'])
    assert code == 0, stderr
    m = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert m['labelled'] is False and m['num_pairs'] == 2
    assert 'map50' not in m and 'per_class' not in m and 'baselines' not in m
    assert set(m['fusion']) == set(FUSION_KEYS) and m['settings']['label_format'] == 'none'
    assert not (tmp_path / 'out' / 'predictions.json').exists()
    assert 'not scored (unlabelled pairs)' in stdout


@pytest.mark.parametrize('problem', ['missing', 'corrupt'])
def test_bad_weights_exit_2_with_one_line(problem, llvip_person, tmp_path):
    weights = tmp_path / 'w.pt'
    if problem == 'corrupt':
        weights.write_bytes(b'not a checkpoint at all')
    code, stdout, stderr = _run(['--weights', weights, '--data', llvip_person,
                                 '--out', tmp_path / 'out'])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and 'error: cannot load weights' in lines[0]
    assert str(weights) in lines[0]
    assert not (tmp_path / 'out').exists()


def test_empty_dataset_exit_2(tiny_weights, llvip_person, tmp_path):
    code, _, stderr = _run(['--weights', tiny_weights, '--data', llvip_person,
                            '--range', '090001..090009', '--out', tmp_path / 'out'])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and 'no usable pairs' in lines[0] and '0 selected' in lines[0]
