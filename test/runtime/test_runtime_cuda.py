"""GPU paths: preprocessing on CUDA, torch fp16 and the fast CUDA-graph path, and the TensorRT
backend with its engine cache. Skipped without CUDA (and, for TensorRT, without tensorrt)."""
import importlib.util

import numpy as np
import pytest
import torch

from efficientmfd_ros.runtime import load_detector
from efficientmfd_ros.runtime.export import export_onnx
from efficientmfd_ros.runtime.preprocess import PreprocessConfig, Preprocessor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
needs_trt = pytest.mark.skipif(importlib.util.find_spec('tensorrt') is None,
                               reason='needs TensorRT (the tensorrt package)')


@pytest.fixture
def smooth_weights(tmp_path, make_tiny):
    return make_tiny(tmp_path / 'tiny.pt', box_step=0.1)


def test_cuda_preprocessing_matches_the_cpu(frame_pair):
    rgb, _ = frame_pair
    thermal = np.random.default_rng(0).integers(0, 65536, (60, 100), dtype=np.uint16)
    cfg = PreprocessConfig((64, 96), letterbox=True, thermal_range=(1000, 60000),
                           homography=((2.0, 0, 1.0), (0, 2.0, 0.5), (0, 0, 1)))
    cpu = Preprocessor(cfg, 'cpu')(rgb, thermal)
    gpu = Preprocessor(cfg, 'cuda')(rgb, thermal)
    for a, b in zip(cpu[:2], gpu[:2]):
        torch.testing.assert_close(b.cpu(), a, atol=1e-5, rtol=0)


def _matched(a, b, box_tol, score_tol):
    """Every detection of a has one in b with the same label within the tolerances."""
    for box, score, label in zip(a.boxes, a.scores, a.labels):
        ok = (b.labels == label) & (np.abs(b.boxes - box).max(axis=1) <= box_tol)
        ok &= np.abs(b.scores - score) <= score_tol
        if not ok.any():
            return False
    return True


@pytest.mark.parametrize('fast', [False, True])
def test_fp16_detections_match_fp32(smooth_weights, frame_pair, fast):
    ref = load_detector(smooth_weights, device='cuda', score_threshold=0.05)
    half = load_detector(smooth_weights, device='cuda', precision='fp16', fast=fast,
                         score_threshold=0.05)
    want, got = ref.infer(*frame_pair), half.infer(*frame_pair)
    again = half.infer(*frame_pair)
    np.testing.assert_array_equal(again.boxes, got.boxes)  # graphs replay deterministically
    assert _matched(want, got, 2.0, 0.02) and _matched(got, want, 2.0, 0.02)
    assert np.abs(want.fused.astype(int) - got.fused.astype(int)).mean() < 2
    assert got.fused.shape == frame_pair[0].shape
    assert half.infer(*frame_pair, fuse=False).fused is None
    if fast:
        assert 'CUDA graphs for backbone, fusion, head' in half.describe()


@needs_trt
def test_tensorrt_engine_is_built_cached_and_matches_torch(smooth_weights, frame_pair, tmp_path):
    export_onnx(smooth_weights, log=lambda _: None)
    cache = tmp_path / 'engines'
    kwargs = {'device': 'cuda', 'precision': 'fp32', 'score_threshold': 0.05,
              'engine_cache_dir': str(cache)}
    with pytest.raises(Exception, match='efficientmfd_build_engine'):
        load_detector(smooth_weights, backend='tensorrt', **kwargs)
    trt = load_detector(smooth_weights, backend='tensorrt', build_engine_if_missing=True,
                        **kwargs)
    assert trt.backend.cached.built
    again = load_detector(smooth_weights, backend='tensorrt', **kwargs)
    assert not again.backend.cached.built
    ref = load_detector(smooth_weights, device='cuda', score_threshold=0.05)
    want, got = ref.infer(*frame_pair), trt.infer(*frame_pair)
    assert _matched(want, got, 1.0, 1e-3) and _matched(got, want, 1.0, 1e-3)
