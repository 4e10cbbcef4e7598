"""ONNX export (lite config at 256x320 and the tiny config), onnxruntime parity with torch, and the
I/O contract the onnxruntime and TensorRT backends rely on."""
import json

import numpy as np
import pytest
import torch

from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
from efficientmfd_ros.runtime import ModelFileError, load_detector
from efficientmfd_ros.runtime.engine_cache import sha256_file
from efficientmfd_ros.runtime.export import (
    check_io_contract,
    export_onnx,
    graph_io,
    read_sidecar,
    sidecar_path,
)
from efficientmfd_ros.runtime.timing import StageTimer
from efficientmfd_ros.tools.export import main as export_main

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def lite_export(tmp_path_factory, project_root):
    """The lite config at 256x320 (h, w), random weights, exported with fusion.

    A trained head refines boxes by small steps; random box-delta layers compound large ones over
    six stages, which turns a 1e-6 float difference into a different RoI level for some boxes.
    Scaling them to a trained head's range keeps the comparison about the export, not chaos.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_lite.yaml')
    cfg = ModelConfig.from_dict({**cfg.to_dict(), 'input_size': [256, 320]})
    torch.manual_seed(0)
    model = build_model(cfg, load_backbone_weights=False)
    with torch.no_grad():
        for stage in model.head.stages:
            stage.box_deltas.weight.mul_(0.1)
            stage.box_deltas.bias.mul_(0.1)
    weights = save_checkpoint(tmp_path_factory.mktemp('lite') / 'lite.pt', model, cfg)
    path, meta = export_onnx(weights, log=lambda _: None)
    torch.set_num_threads(threads)
    return weights, path, meta, cfg


def test_export_writes_the_graph_and_its_sidecar_next_to_the_weights(lite_export):
    weights, path, meta, cfg = lite_export
    assert path == weights.with_suffix('.onnx') and sidecar_path(path).is_file()
    assert json.loads(sidecar_path(path).read_text()) == meta
    assert meta['onnx_sha256'] == sha256_file(path)
    assert meta['checkpoint_sha256'] == sha256_file(weights)
    assert meta['input_size'] == [256, 320] and meta['class_names'] == list(cfg.class_names)
    assert meta['normalization']['mean'] == pytest.approx([0.485, 0.456, 0.406])
    assert meta['num_proposals'] == cfg.head.num_proposals
    assert meta['noise_seed'] == cfg.head.noise_seed
    assert meta['precision'] == 'fp32' and meta['fusion'] is True
    model = onnx.load(str(path), load_external_data=False)
    opset = {o.domain: o.version for o in model.opset_import}['']
    assert opset >= 17 and meta['opset'] == opset
    assert 'NonMaxSuppression' not in {n.op_type for n in model.graph.node}


def test_io_contract_matches_the_graph(lite_export):
    _, path, meta, cfg = lite_export
    n, c = cfg.head.num_proposals, cfg.head.num_classes
    io = graph_io(path)
    assert [(d['name'], d['shape'], d['dtype']) for d in io['inputs']] == [
        ('rgb', [1, 3, 256, 320], 'float32'), ('thermal', [1, 1, 256, 320], 'float32'),
        ('noise_boxes', [1, n, 4], 'float32')]
    assert [(d['name'], d['shape'], d['dtype']) for d in io['outputs']] == [
        ('pred_logits', [1, n, c], 'float32'), ('pred_boxes', [1, n, 4], 'float32'),
        ('fused_rgb', [1, 3, 256, 320], 'float32')]
    assert io['inputs'] == meta['inputs'] and io['outputs'] == meta['outputs']
    check_io_contract(path, meta)
    wrong = json.loads(json.dumps(meta))
    wrong['outputs'][1]['shape'] = [1, n + 1, 4]
    with pytest.raises(ModelFileError, match='does not match its sidecar'):
        check_io_contract(path, wrong)


def test_onnxruntime_matches_torch(lite_export):
    weights = lite_export[0]
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (512, 640, 3), dtype=np.uint8)
    thermal = rng.integers(0, 65536, (512, 640), dtype=np.uint16)
    kwargs = {'score_threshold': 0.0, 'max_detections': 100}
    ref = load_detector(weights, backend='torch', **kwargs)
    ort = load_detector(weights, backend='onnxruntime', **kwargs)
    assert ort.backend_name == 'onnxruntime'
    # Raw network outputs on identical preprocessed inputs and noise boxes.
    rgb_t, thermal_t, _ = ref._pre(rgb, thermal)
    torch.testing.assert_close(ref._noise, ort._noise, rtol=0, atol=0)
    a = ref.backend.run(rgb_t, thermal_t, ref._noise, True, StageTimer('cpu'))
    b = ort.backend.run(rgb_t, thermal_t, ort._noise, True, StageTimer('cpu'))
    assert (b.pred_boxes - a.pred_boxes).abs().max() < 1.0
    assert (b.pred_logits.sigmoid() - a.pred_logits.sigmoid()).abs().max() < 1e-3
    assert (b.fused_rgb - a.fused_rgb).abs().max() < 1e-3
    # End to end through the shared postprocessing.
    want, got = ref.infer(rgb, thermal), ort.infer(rgb, thermal)
    assert len(want) == len(got) > 0
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1.0)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)
    np.testing.assert_array_equal(got.labels, want.labels)
    assert np.abs(got.fused.astype(int) - want.fused.astype(int)).max() <= 1
    assert 'network' in got.timings_ms


def test_detection_only_export(tiny_weights, caplog):
    path, meta = export_onnx(tiny_weights, fusion=False, log=lambda _: None)
    assert [o['name'] for o in meta['outputs']] == ['pred_logits', 'pred_boxes']
    det = load_detector(tiny_weights, backend='onnxruntime', score_threshold=0.0)
    assert det.has_fusion is False
    result = det.infer(np.zeros((64, 96, 3), np.uint8), np.zeros((64, 96), np.uint8))
    assert result.fused is None and len(result) > 0
    assert 'without fusion' in caplog.text


def test_fp16_export_keeps_a_float32_interface(tiny_weights, tmp_path):
    out = tmp_path / 'half.onnx'
    path, meta = export_onnx(tiny_weights, out, fp16=True, log=lambda _: None)
    assert meta['precision'] == 'fp16'
    model = onnx.load(str(path))
    types = {init.data_type for init in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert {d['dtype'] for d in graph_io(path)['inputs'] + graph_io(path)['outputs']} == {
        'float32'}
    check_io_contract(path, meta)
    with pytest.raises(ModelFileError, match='exported as fp16'):
        load_detector(path, backend='onnxruntime', precision='fp32')


def test_changed_or_unexplained_onnx_files_are_refused(tiny_weights):
    path, _ = export_onnx(tiny_weights, log=lambda _: None)
    with open(path, 'ab') as f:
        f.write(b'\0')
    with pytest.raises(ModelFileError, match='changed since export'):
        read_sidecar(path)
    sidecar_path(path).unlink()
    with pytest.raises(ModelFileError, match='missing'):
        load_detector(path, backend='onnxruntime')


def test_export_cli(tiny_weights, capsys):
    assert export_main(['--weights', str(tiny_weights), '--no-fusion', '--opset', '18']) == 0
    meta = read_sidecar(tiny_weights.with_suffix('.onnx'))
    assert meta['fusion'] is False and meta['opset'] == 18
    assert 'wrote' in capsys.readouterr().out
    assert export_main(['--weights', str(tiny_weights.with_name('nope.pt'))]) == 2
    assert export_main(['--weights', str(tiny_weights), '--opset', '13']) == 2
    assert 'opset must be >= 17' in capsys.readouterr().err
