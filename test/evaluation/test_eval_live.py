"""Live bag evaluation through the real node over DDS agrees with the offline evaluation."""
import json
import os

import numpy as np
import pytest

from efficientmfd_ros.bags.bagio import BagReader
from efficientmfd_ros.evaluation.offline import SyncConfig
from efficientmfd_ros.tools.eval_bag import main as eval_main

pytestmark = pytest.mark.ros
pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')

COMMON = ['--backend', 'torch', '--device', 'cpu', '--score-threshold', '0.0', '--quiet']


def _detections_by_stamp(out):
    """{stamp_ns: [(category, score, (x, y, w, h))] sorted by score} from the COCO files."""
    images = {i['id']: int(i['file_name'])
              for i in json.loads((out / 'ground_truth.json').read_text())['images']}
    found = {}
    for r in json.loads((out / 'predictions.json').read_text()):
        found.setdefault(images[r['image_id']], []).append(
            (r['category_id'], r['score'], tuple(r['bbox'])))
    return {stamp: sorted(dets, key=lambda d: -d[1]) for stamp, dets in found.items()}


@pytest.fixture
def ros_domain(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(200 + os.getpid() % 30))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


@pytest.mark.timeout(300)
def test_live_and_offline_agree(tiny_bag, tiny_weights, offline_run, tmp_path, ros_domain):
    live, offline = tmp_path / 'live', offline_run[0]
    assert eval_main(['--bag', str(tiny_bag), '--weights', str(tiny_weights), '--out', str(live),
                      '--mode', 'live', '--rate', '0.5', *COMMON]) == 0
    metrics = json.loads((live / 'metrics.json').read_text())
    assert metrics['mode'] == 'live'
    assert (metrics['backend'], metrics['device']) == ('torch', 'cpu')  # from /diagnostics
    assert metrics['pairs_total'] == 6
    assert 1 <= metrics['pairs_matched'] == 6 - metrics['pairs_dropped']
    lat, after = metrics['latency_ms'], metrics['latency_after_pair_ms']
    assert 0 < lat['p50'] <= lat['p95'] <= lat['max'] < 60_000
    assert after['max'] <= lat['max'] + 1e-6  # the wait for the partner only adds
    assert metrics['output_rate_hz'] is None or metrics['output_rate_hz'] > 0

    with BagReader(metrics['output_bag']) as reader:
        # the node this tool starts lives in a private namespace: no cross-talk on the domain
        counts = {t.split('/')[-1]: (t, i.count) for t, i in reader.topics.items()}
    assert counts['detections'][0] == f'/efficientmfd_eval_{os.getpid()}/detections'
    assert counts['detections'][1] == metrics['pairs_matched']
    assert counts['label_info'][1] == 1 and counts['image'][1] == metrics['pairs_matched']

    live_dets, offline_dets = _detections_by_stamp(live), _detections_by_stamp(offline)
    both = set(live_dets) & set(offline_dets)
    assert len(both) == metrics['pairs_matched']
    total = 0
    for stamp in both:
        a, b = live_dets[stamp], offline_dets[stamp]
        assert [d[0] for d in a] == [d[0] for d in b], stamp
        np.testing.assert_allclose([d[1] for d in a], [d[1] for d in b], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose([d[2] for d in a], [d[2] for d in b], atol=1e-3)
        total += len(a)
    assert total > 0  # a zero threshold keeps the random model's boxes: something to compare
    assert (live / 'report.html').stat().st_size > 10_000


@pytest.mark.timeout(300)
def test_live_asks_the_node_for_fused_images_only_where_fusion_is_sampled(
        tiny_bag, tiny_weights, tmp_path, ros_domain):
    out = tmp_path / 'live'
    assert eval_main(['--bag', str(tiny_bag), '--weights', str(tiny_weights), '--out', str(out),
                      '--mode', 'live', '--rate', '0.5', '--fusion-samples', '2', *COMMON]) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['fused_image_every_n'] == 3  # 6 pairs, 2 samples
    with BagReader(metrics['output_bag']) as reader:
        counts = {t.split('/')[-1]: i.count for t, i in reader.topics.items()}
    # the node counts the pairs it runs: 0 and 3 of 6 get a fused image, all get detections
    assert counts['detections'] == metrics['pairs_matched'] >= 4
    assert 1 <= counts['image'] <= 2
    assert metrics['en'] is not None and metrics['fusion_frames'] == counts['image']


def test_offline_pairing_defaults_are_the_nodes():
    from efficientmfd_ros.ros.params import BY_NAME
    sync = SyncConfig()
    assert sync.slop_s == BY_NAME['approximate_sync_tolerance_s'].default
    assert sync.queue_size == BY_NAME['queue_size'].default
    assert sync.max_backwards_s == BY_NAME['max_backwards_s'].default
    assert sync.match_wait_s == BY_NAME['approximate_sync_wait_s'].default == 0.0
