"""How many noise boxes the head refines is chosen at load time: torch draws the count asked for,
an ONNX export has it fixed (the cache keeps one export per count, a given file must match)."""
import json

import numpy as np
import pytest

from efficientmfd_ros.model import ModelConfigError, load_checkpoint
from efficientmfd_ros.runtime import ModelFileError, load_detector
from efficientmfd_ros.runtime.export import export_onnx, sidecar_path


def _own_count(weights) -> int:
    return load_checkpoint(weights)[1].head.num_proposals


def test_torch_draws_the_requested_count_and_defaults_to_the_checkpoints(tiny_weights,
                                                                         frame_pair):
    own = _own_count(tiny_weights)
    assert load_detector(tiny_weights, backend='torch').num_proposals == own
    det = load_detector(tiny_weights, backend='torch', num_proposals=own + 5)
    assert det.num_proposals == own + 5
    assert tuple(det.backend.make_noise_boxes(0).shape) == (1, own + 5, 4)
    result = det.infer(*frame_pair)
    assert len(result.boxes) == len(result.scores)


@pytest.mark.parametrize('bad', [0, -1, 1001, 2.5, True])
def test_a_count_outside_1_to_1000_is_refused_before_loading(tiny_weights, bad):
    with pytest.raises(ValueError, match='num_proposals must be an integer in'):
        load_detector(tiny_weights, backend='torch', num_proposals=bad)


def test_the_model_config_copy_validates_the_count(tiny_weights):
    cfg = load_checkpoint(tiny_weights)[1]
    own = cfg.head.num_proposals
    assert cfg.with_num_proposals(own + 1).head.num_proposals == own + 1
    assert cfg.head.num_proposals == own  # a copy: the original is left as it was
    with pytest.raises(ModelConfigError, match='num_proposals must be positive'):
        cfg.with_num_proposals(0)


def test_the_cpu_onnx_cache_keeps_one_export_per_count_and_matches_torch(tiny_weights, tmp_path,
                                                                         frame_pair):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    cache = tmp_path / 'cache'
    want = _own_count(tiny_weights) + 3
    det = load_detector(tiny_weights, backend='onnxruntime', onnx_cache_dir=str(cache),
                        num_proposals=want)
    assert det.num_proposals == want
    made = sorted(cache.glob('*.onnx'))
    assert [p.name.endswith(s) for p, s in zip(made, (f'-p{want}-detect.onnx',
                                                      f'-p{want}.onnx'))] == [True, True]
    assert {json.loads(sidecar_path(p).read_text())['num_proposals'] for p in made} == {want}
    load_detector(tiny_weights, backend='onnxruntime', onnx_cache_dir=str(cache))
    assert len(list(cache.glob('*.onnx'))) == 4  # the checkpoint's own count: its own files
    torch_det = load_detector(tiny_weights, backend='torch', num_proposals=want)
    a, b = det.infer(*frame_pair), torch_det.infer(*frame_pair)
    assert len(a.boxes) == len(b.boxes)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)


def test_a_given_onnx_file_of_another_count_is_a_clear_error(tiny_weights):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    own = _own_count(tiny_weights)
    path, meta = export_onnx(tiny_weights, log=lambda _: None, num_proposals=own + 2)
    assert meta['num_proposals'] == own + 2
    assert meta['outputs'][0]['shape'][1] == own + 2
    assert load_detector(path, backend='onnxruntime').num_proposals == own + 2
    with pytest.raises(ModelFileError, match=f'efficientmfd_export --num-proposals {own}'):
        load_detector(path, backend='onnxruntime', num_proposals=own)


def test_export_cli_takes_the_count(tiny_weights, tmp_path):
    pytest.importorskip('onnx')
    from efficientmfd_ros.tools.export import main
    out = tmp_path / 'm.onnx'
    assert main(['--weights', str(tiny_weights), '--out', str(out), '--num-proposals', '6',
                 '--no-fusion']) == 0
    assert json.loads(sidecar_path(out).read_text())['num_proposals'] == 6
    assert main(['--weights', str(tiny_weights), '--out', str(out), '--num-proposals', '0']) == 2
