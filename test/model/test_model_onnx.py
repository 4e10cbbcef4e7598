"""The export entry point traces to ONNX (opset 17) and onnxruntime reproduces it."""
import warnings

import numpy as np
import pytest
import torch

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')


def test_tiny_model_exports(tiny_model, tiny_inputs, tmp_path):
    rgb, thermal = tiny_inputs
    tiny_model.eval()
    noise = tiny_model.make_noise_boxes(2)
    path = tmp_path / 'tiny.onnx'
    outputs = ['pred_logits', 'pred_boxes', 'fused_rgb']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer notes on shapes fixed at export time
        torch.onnx.export(tiny_model, (rgb, thermal, noise), str(path), opset_version=17,
                          dynamo=False, input_names=['rgb', 'thermal', 'noise_boxes'],
                          output_names=outputs)
    with torch.no_grad():
        expected = tiny_model(rgb, thermal, noise)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {'rgb': rgb.numpy(), 'thermal': thermal.numpy(),
                             'noise_boxes': noise.numpy()})
    assert [o.name for o in session.get_outputs()] == outputs
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert 'RoiAlign' in ops
    np.testing.assert_allclose(got[0], expected[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(got[1], expected[1].numpy(), atol=0.05, rtol=1e-4)
    np.testing.assert_allclose(got[2], expected[2].numpy(), atol=1e-5)
