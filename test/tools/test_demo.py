"""The demo: a bag from the synthetic scene (or a dataset), live through the node, headline."""
import json
import os

import pytest

from efficientmfd_ros.tools.demo import main as demo_main

SMALL = ['--frames', '6', '--size', '128x96']


def test_missing_weights_say_so(tmp_path, capsys):
    assert demo_main(['--weights', str(tmp_path / 'absent.pt'), '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert 'absent.pt are missing' in err and '--weights' in err


def test_refuses_to_replace_folders_it_did_not_make(tiny_weights, tmp_path, capsys):
    (tmp_path / 'bag').mkdir()
    (tmp_path / 'bag' / 'precious.txt').write_text('keep me')
    assert demo_main(['--weights', str(tiny_weights), '--out', str(tmp_path), *SMALL]) == 2
    assert 'was not made by the demo' in capsys.readouterr().err
    assert (tmp_path / 'bag' / 'precious.txt').read_text() == 'keep me'


def test_rerun_replaces_what_the_demo_made(tiny_weights, tmp_path):
    args = ['--weights', str(tiny_weights), '--out', str(tmp_path), '--mode', 'offline',
            '--frames', '2', '--size', '96x64']
    assert demo_main(args) == 0
    (tmp_path / 'eval' / 'stale.txt').write_text('from the first run')
    assert demo_main(args) == 0
    assert not (tmp_path / 'eval' / 'stale.txt').exists()
    assert (tmp_path / 'eval' / 'report.html').is_file()


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_demo_live_on_the_synthetic_scene(tiny_weights, tmp_path, capsys, monkeypatch):
    pytest.importorskip('rclpy')
    monkeypatch.setenv('ROS_DOMAIN_ID', str(200 + os.getpid() % 30))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    assert demo_main(['--weights', str(tiny_weights), '--out', str(tmp_path), *SMALL]) == 0
    out = capsys.readouterr().out
    assert f'report: {tmp_path / "eval" / "report.html"}' in out
    # backend auto on a CPU: onnxruntime, from an export made on first use (where onnx is here)
    import importlib.util
    backend = 'onnxruntime' if importlib.util.find_spec('onnx') else 'torch'
    assert 'mAP@0.5' in out and 'latency    p50' in out and f'(live, {backend} on cpu)' in out
    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert metrics['mode'] == 'live' and metrics['pairs_total'] == 6
    assert metrics['ground_truth']['boxes'] > 0


@pytest.mark.data
def test_demo_bag_from_a_dataset(llvip_person, tiny_weights, tmp_path, capsys):
    assert demo_main(['--data', str(llvip_person), '--weights', str(tiny_weights), '--out',
                      str(tmp_path), '--mode', 'offline', '--frames', '2', '--size', '160x128'])\
        == 0
    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert metrics['pairs_total'] == 2
    # LLVIP labels people only; the tiny model's 'car' class simply has no ground truth
    assert metrics['per_class']['person']['num_gt'] > 0
    assert metrics['per_class']['car']['num_gt'] == 0
