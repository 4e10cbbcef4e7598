"""Offline bag evaluation end to end with a tiny random model: metrics.json, a self-contained
report.html (also looked at in headless Chromium), the video, determinism, COCO ground truth."""
import json
from pathlib import Path
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from efficientmfd_ros.tools.eval_bag import main as eval_main

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
KEYS = ('map50', 'map50_95', 'per_class', 'en', 'mi', 'vif', 'qabf', 'ssim', 'pairs_total',
        'pairs_matched', 'pairs_dropped', 'latency_ms', 'backend', 'device', 'model', 'bag')


def test_metrics_json(offline_run):
    _, metrics = offline_run
    assert all(k in metrics for k in KEYS)
    assert metrics['mode'] == 'offline' and metrics['backend'] == 'torch'
    assert metrics['device'] == 'cpu'
    # the thermal stream lags 4 ms, well inside the 20 ms pairing tolerance: all pairs made
    assert metrics['pairs_total'] == metrics['pairs_matched'] == 6
    assert metrics['pairs_dropped'] == 0 and metrics['unpaired'] == {'rgb': 0, 'thermal': 0}
    assert set(metrics['latency_ms']) >= {'p50', 'p95', 'max'}
    assert 0 < metrics['latency_ms']['p50'] <= metrics['latency_ms']['max']
    assert 0.0 <= metrics['map50'] <= 1.0 and metrics['per_class']['person']['num_gt'] > 0
    assert metrics['fusion_frames'] == 6 and metrics['en'] > 0
    assert metrics['ground_truth']['frames'] == 6


def test_offline_is_deterministic(offline_run, tiny_bag, tiny_weights, tmp_path):
    out, _ = offline_run
    assert eval_main(['--bag', str(tiny_bag), '--weights', str(tiny_weights), '--out',
                      str(tmp_path), '--backend', 'torch', '--device', 'cpu',
                      '--score-threshold', '0.0', '--quiet']) == 0
    first = json.loads((out / 'predictions.json').read_text())
    again = json.loads((tmp_path / 'predictions.json').read_text())
    assert len(first) > 0 and first == again


def test_report_is_self_contained(offline_run):
    out, metrics = offline_run
    page = (out / 'report.html').read_text()
    assert page.startswith('<!DOCTYPE html>')
    # nothing fetched from elsewhere: no scripts, stylesheets, or non-data image sources
    assert '<script' not in page and '<link' not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) >= 8 and all(s.startswith('data:image/') for s in sources)
    for title in ('Summary', 'Per class', 'Latency', 'Annotated fused frames', 'Best frames',
                  'Worst frames'):
        assert f'>{title}</h2>' in page
    assert f'{metrics["map50"]:.3f}' in page
    assert 'RGB frames without a thermal partner' in page


def test_video_written(offline_run):
    out, _ = offline_run
    video = cv2.VideoCapture(str(out / 'video.mp4'))
    frames = 0
    while video.read()[0]:
        frames += 1
    video.release()
    assert frames == 6


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (apt-get install '
                    'chromium) so the report cannot be looked at')
def test_report_screenshot_in_headless_chromium(offline_run, tmp_path):
    out, _ = offline_run
    shot = tmp_path / 'report.png'
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', f'--user-data-dir={tmp_path / "profile"}', '--hide-scrollbars',
           '--window-size=1280,2400', f'--screenshot={shot}',
           Path(out / 'report.html').resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    # a rendered page, not a blank or broken one: text, tables, plots and frames fill the
    # height, the legend and boxes bring their green and orange, the frames their grey
    inked_rows = (image.min(axis=(1, 2)) < 150).mean()
    green = ((image[:, :, 1] > 180) & (image[:, :, 2] < 120) & (image[:, :, 0] < 150)).sum()
    orange = ((image[:, :, 2] > 200) & (image[:, :, 1] > 90) & (image[:, :, 1] < 180)
              & (image[:, :, 0] < 80)).sum()
    assert inked_rows > 0.5 and green > 200 and orange > 200
    assert float(np.std(image)) > 20


def test_unloadable_weights_give_one_clear_error(tiny_bag, tmp_path, capsys):
    bad = tmp_path / 'bad.pt'
    bad.write_text('not a checkpoint')
    for weights in (bad, tmp_path / 'absent.pt'):
        assert eval_main(['--bag', str(tiny_bag), '--weights', str(weights), '--out',
                          str(tmp_path / 'out'), '--device', 'cpu', '--quiet']) == 2
        err = capsys.readouterr().err
        assert err.startswith(f'efficientmfd_eval_bag: error: cannot load model {weights}')


def test_coco_annotations_replace_the_gt_topic(offline_run, tiny_bag, tiny_weights, tmp_path):
    out, metrics = offline_run
    assert eval_main(['--bag', str(tiny_bag), '--weights', str(tiny_weights), '--out',
                      str(tmp_path), '--annotations', str(out / 'ground_truth.json'),
                      '--backend', 'torch', '--device', 'cpu', '--score-threshold', '0.0',
                      '--fusion-samples', '0', '--quiet']) == 0
    again = json.loads((tmp_path / 'metrics.json').read_text())
    assert again['ground_truth']['source'] == str(out / 'ground_truth.json')
    assert again['map50'] == metrics['map50'] and again['map50_95'] == metrics['map50_95']
    assert again['fusion_frames'] == 0 and again['en'] is None
