"""The ONNX export cache (hit, miss, stale and tampered files) and the CPU thread settings."""
import json

import pytest
import torch

from efficientmfd_ros.runtime.engine_cache import sha256_file
from efficientmfd_ros.runtime.export import GRAPH_VERSION, sidecar_path
from efficientmfd_ros.runtime.onnx_cache import cached_onnx, default_onnx_cache_dir
from efficientmfd_ros.runtime.threads import configure_torch_cpu, ort_cpu_options, usable_cpus

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')


def _quiet(_):
    pass


def test_miss_then_hit_then_new_weights_get_their_own_export(tiny_weights, make_tiny, tmp_path):
    cache = tmp_path / 'cache'
    sha = sha256_file(tiny_weights)
    path, status = cached_onnx(tiny_weights, sha, cache, log=_quiet)
    assert status.startswith('exported: no cached export') and path.is_file()
    assert json.loads(sidecar_path(path).read_text())['checkpoint_sha256'] == sha
    stamp = path.stat().st_mtime_ns
    again, status = cached_onnx(tiny_weights, sha, cache, log=_quiet)
    assert (again, status) == (path, 'hit') and path.stat().st_mtime_ns == stamp
    make_tiny(tiny_weights, seed=1)  # retrained: another hash, another file
    new_sha = sha256_file(tiny_weights)
    other, status = cached_onnx(tiny_weights, new_sha, cache, log=_quiet)
    assert other != path and status.startswith('exported')
    assert json.loads(sidecar_path(other).read_text())['checkpoint_sha256'] == new_sha


def test_a_stale_or_altered_cached_file_is_exported_again(tiny_weights, tmp_path):
    cache = tmp_path / 'cache'
    sha = sha256_file(tiny_weights)
    path, _ = cached_onnx(tiny_weights, sha, cache, log=_quiet)
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, 'checkpoint_sha256': '0' * 64}))
    _, status = cached_onnx(tiny_weights, sha, cache, log=_quiet)
    assert 'other weights (stale)' in status
    assert json.loads(side.read_text())['checkpoint_sha256'] == sha
    with open(path, 'ab') as f:
        f.write(b'\0')  # a damaged file no longer matches its sidecar's hash
    _, status = cached_onnx(tiny_weights, sha, cache, log=_quiet)
    assert 'changed since export' in status
    assert cached_onnx(tiny_weights, sha, cache, log=_quiet)[1] == 'hit'
    # An export an older efficientmfd_ros made (before the sidecar named a graph version).
    meta = json.loads(side.read_text())
    del meta['graph_version']
    side.write_text(json.dumps(meta))
    _, status = cached_onnx(tiny_weights, sha, cache, log=_quiet)
    assert 'graph version 1' in status
    assert json.loads(side.read_text())['graph_version'] == GRAPH_VERSION


def test_default_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('EFFICIENTMFD_ONNX_CACHE', str(tmp_path / 'x'))
    assert default_onnx_cache_dir() == tmp_path / 'x'
    monkeypatch.delenv('EFFICIENTMFD_ONNX_CACHE')
    monkeypatch.setenv('EFFICIENTMFD_ENGINE_CACHE', str(tmp_path / 'e' / 'engines'))
    assert default_onnx_cache_dir() == tmp_path / 'e' / 'onnx'


def test_onnxruntime_options_use_every_usable_cpu_and_never_spin():
    options = ort_cpu_options(ort)
    assert options.intra_op_num_threads == usable_cpus() >= 1
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert ort_cpu_options(ort, 3).intra_op_num_threads == 3


def test_torch_threads_follow_the_setting_and_none_leaves_them(tiny_weights):
    from efficientmfd_ros.runtime import load_detector
    before = torch.get_num_threads()
    try:
        assert configure_torch_cpu(torch, 0) == usable_cpus() == torch.get_num_threads()
        torch.set_num_threads(1)
        load_detector(tiny_weights, backend='torch')
        assert torch.get_num_threads() == 1
        load_detector(tiny_weights, backend='torch', cpu_threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_detection_only_export_of_other_weights_is_refused(tiny_weights, make_tiny, tmp_path):
    from efficientmfd_ros.runtime.backend_onnx import OnnxRuntimeBackend
    from efficientmfd_ros.runtime.errors import ModelFileError
    cache = tmp_path / 'cache'
    full, _ = cached_onnx(tiny_weights, sha256_file(tiny_weights), cache, log=_quiet)
    detect, _ = cached_onnx(tiny_weights, sha256_file(tiny_weights), cache, log=_quiet,
                            fusion=False)
    assert detect.name.endswith('-detect.onnx') and not json.loads(
        sidecar_path(detect).read_text())['fusion']
    assert OnnxRuntimeBackend(full, detect_only_path=detect).detect_session is not None
    make_tiny(tiny_weights, seed=1)
    other, _ = cached_onnx(tiny_weights, sha256_file(tiny_weights), cache, log=_quiet,
                           fusion=False)
    with pytest.raises(ModelFileError, match='not a fusion-free export'):
        OnnxRuntimeBackend(full, detect_only_path=other)
    with pytest.raises(ModelFileError, match='not a fusion-free export'):
        OnnxRuntimeBackend(full, detect_only_path=full)
