"""Backend selection: the auto chain (tensorrt -> onnxruntime -> torch) and the reasons it logs;
explicit backends fail clearly instead of falling back; TensorRT build-mode rules."""
import importlib.util
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from efficientmfd_ros.runtime import BackendUnavailableError, ModelFileError, load_detector
from efficientmfd_ros.runtime.backend_tensorrt import build_mode
from efficientmfd_ros.runtime.export import export_onnx

HAS_TRT = importlib.util.find_spec('tensorrt') is not None
needs_no_trt = pytest.mark.skipif(HAS_TRT, reason='tensorrt is installed here')
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is present')


@needs_no_trt
def test_auto_picks_onnxruntime_when_an_onnx_is_next_to_the_weights(tiny_weights, caplog):
    export_onnx(tiny_weights, log=lambda _: None)
    caplog.set_level(logging.INFO, logger='efficientmfd_ros.runtime')
    det = load_detector(tiny_weights, backend='auto')
    assert det.backend_name == 'onnxruntime'
    assert len(det.selection_notes) == 1
    assert 'skipped tensorrt' in det.selection_notes[0]
    assert 'not installed' in det.selection_notes[0]
    assert 'skipped tensorrt' in caplog.text and 'using onnxruntime' in caplog.text


@needs_no_trt
def test_auto_on_a_cpu_exports_once_into_the_cache_and_runs_onnxruntime(tiny_weights, tmp_path,
                                                                        frame_pair):
    cache = tmp_path / 'onnx_cache'
    det = load_detector(tiny_weights, backend='auto', onnx_cache_dir=str(cache))
    assert det.backend_name == 'onnxruntime'
    assert not tiny_weights.with_suffix('.onnx').exists()  # nothing written beside the weights
    exported = sorted(p.name for p in cache.glob('*.onnx'))
    # the full graph, and a fusion-free one for pairs that need no fused image
    assert len(exported) == 2 and exported[0].endswith('-detect.onnx')
    assert det.backend.detect_session is not None
    torch_det = load_detector(tiny_weights, backend='torch')
    rgb, thermal = frame_pair
    for fuse in (False, True):
        a, b = det.infer(rgb, thermal, fuse=fuse), torch_det.infer(rgb, thermal, fuse=fuse)
        assert len(a.boxes) == len(b.boxes) and (a.fused is None) == (not fuse)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)


@needs_no_trt
def test_auto_without_an_export_and_without_exporting_falls_back_to_torch(tiny_weights):
    from efficientmfd_ros.runtime.selection import BackendRequest, create_backend
    request = BackendRequest(tiny_weights, export_if_missing=False)
    chosen, notes = create_backend(request, 'auto')
    assert chosen.name == 'torch'
    tensorrt_note, ort_note = notes
    assert 'skipped tensorrt' in tensorrt_note and 'not installed' in tensorrt_note
    assert 'skipped onnxruntime' in ort_note and 'no ONNX file next to the weights' in ort_note
    assert str(tiny_weights.with_suffix('.onnx')) in ort_note


def test_auto_skips_an_onnx_exported_from_other_weights(tiny_weights, make_tiny):
    export_onnx(tiny_weights, log=lambda _: None)
    make_tiny(tiny_weights, seed=1)  # retrained weights, stale export
    det = load_detector(tiny_weights, backend='auto')
    assert det.backend_name == 'torch'
    assert 'stale export' in det.selection_notes[-1]
    with pytest.raises(ModelFileError, match='stale export'):
        load_detector(tiny_weights, backend='onnxruntime')


def test_auto_skips_an_onnx_of_another_input_size(tiny_weights):
    export_onnx(tiny_weights, log=lambda _: None)
    det = load_detector(tiny_weights, backend='auto', input_size=(96, 128))
    assert det.backend_name == 'torch' and det.input_size == (96, 128)
    assert 'exported at input size (64, 96)' in det.selection_notes[-1]


@needs_no_trt
def test_explicit_tensorrt_is_a_clear_error_here(tiny_weights):
    export_onnx(tiny_weights, log=lambda _: None)
    with pytest.raises(BackendUnavailableError, match='tensorrt.*not installed'):
        load_detector(tiny_weights, backend='tensorrt', device='cuda')


def test_explicit_onnxruntime_without_an_onnx_does_not_fall_back(tiny_weights):
    from efficientmfd_ros.runtime.selection import BackendRequest, create_backend
    with pytest.raises(BackendUnavailableError, match='no ONNX file next to the weights.*'
                                                      'efficientmfd_export'):
        create_backend(BackendRequest(tiny_weights, export_if_missing=False), 'onnxruntime')
    with pytest.raises(BackendUnavailableError, match='no ONNX file next to the weights'):
        load_detector(tiny_weights, backend='onnxruntime', precision='fp16')


@needs_no_cuda
@pytest.mark.parametrize('kwargs, message', [
    ({'backend': 'torch', 'device': 'cuda'}, 'no CUDA device'),
    ({'backend': 'torch', 'device': 'cpu', 'precision': 'fp16'}, 'fp16 needs a CUDA device'),
    ({'backend': 'torch', 'device': 'cpu', 'fast': True}, 'fast torch path needs a CUDA'),
    ({'backend': 'torch', 'device': 'tpu'}, 'unsupported device'),
])
def test_torch_backend_refuses_what_it_cannot_do(tiny_weights, kwargs, message):
    with pytest.raises(BackendUnavailableError, match=message):
        load_detector(tiny_weights, **kwargs)


@needs_no_cuda
def test_onnxruntime_on_cuda_needs_the_cuda_provider(tiny_weights):
    import onnxruntime

    if 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
        pytest.skip('onnxruntime has the CUDA provider here')
    export_onnx(tiny_weights, log=lambda _: None)
    with pytest.raises(BackendUnavailableError, match='CUDAExecutionProvider'):
        load_detector(tiny_weights, backend='onnxruntime', device='cuda')


@needs_no_cuda
@needs_no_trt
def test_auto_on_cuda_without_any_gpu_backend_reports_every_reason(tiny_weights):
    export_onnx(tiny_weights, log=lambda _: None)
    with pytest.raises(BackendUnavailableError) as info:
        load_detector(tiny_weights, backend='auto', device='cuda')
    text = str(info.value)
    assert 'skipped tensorrt' in text and 'skipped onnxruntime' in text
    assert 'skipped torch' in text and 'no CUDA device' in text


def test_torch_backend_needs_the_checkpoint_not_the_onnx(tiny_weights):
    path, _ = export_onnx(tiny_weights, log=lambda _: None)
    with pytest.raises(BackendUnavailableError, match='needs a checkpoint'):
        load_detector(path, backend='torch')
    assert load_detector(path, backend='onnxruntime').backend_name == 'onnxruntime'


TRT10 = SimpleNamespace(__version__='10.9.0', BuilderFlag=SimpleNamespace(FP16=1))
TRT11 = SimpleNamespace(__version__='11.0.0', BuilderFlag=SimpleNamespace())


@pytest.mark.parametrize('trt, onnx_precision, precision, mode', [
    (TRT10, 'fp32', 'fp32', 'fp32'), (TRT10, 'fp32', 'fp16', 'fp16_flag'),
    (TRT10, 'fp16', 'fp16', 'strongly_typed'), (TRT11, 'fp16', 'fp16', 'strongly_typed'),
    (TRT11, 'fp32', 'fp32', 'fp32'),
])
def test_tensorrt_build_mode(trt, onnx_precision, precision, mode):
    assert build_mode(trt, onnx_precision, precision) == mode


def test_tensorrt_11_needs_an_fp16_onnx_for_fp16():
    with pytest.raises(ModelFileError, match='no BuilderFlag.FP16.*--fp16'):
        build_mode(TRT11, 'fp32', 'fp16')
    with pytest.raises(ModelFileError, match='exported with --fp16'):
        build_mode(TRT10, 'fp16', 'fp32')


@needs_no_trt
def test_build_engine_cli_reports_missing_tensorrt(tiny_weights, capsys):
    from efficientmfd_ros.tools.build_engine import main

    path, _ = export_onnx(tiny_weights, log=lambda _: None)
    assert main(['--onnx', str(path), '--fp16']) == 1
    assert 'TensorRT' in capsys.readouterr().err
