"""Engine cache: the key covers every dependency, bad entries are rebuilt (never trusted by name),
building happens only when allowed, writes are atomic and serialized by the lock.

TensorRT is not needed: the builder and deserializer are plain functions passed in, which is how
the TensorRT backend uses the cache too; these tests exercise the cache's own logic.
"""
from dataclasses import replace
import hashlib
import json
import threading
import time

import pytest

from efficientmfd_ros.runtime.engine_cache import (
    EngineCache,
    EngineCacheError,
    EngineKey,
    default_cache_dir,
)

KEY = EngineKey(onnx_sha256='ab' * 32, tensorrt_version='10.9.0', gpu_name='NVIDIA H100',
                compute_capability='9.0', precision='fp16',
                input_shapes=(('rgb', (1, 3, 512, 640)), ('thermal', (1, 1, 512, 640)),
                              ('noise_boxes', (1, 100, 4))))


class Builder:
    """Counts builds; each build returns distinct bytes."""

    def __init__(self, delay_s: float = 0.0):
        self.calls = 0
        self.delay_s = delay_s

    def __call__(self) -> bytes:
        self.calls += 1
        time.sleep(self.delay_s)
        return b'ENGINE' + bytes([self.calls]) * 64


def deserialize(data: bytes):
    """Stands for TensorRT's deserializer: accepts only what Builder produces."""
    if not data.startswith(b'ENGINE'):
        raise RuntimeError('not an engine')
    return ('engine', data)


@pytest.mark.parametrize('field, value', [
    ('onnx_sha256', 'cd' * 32), ('tensorrt_version', '11.0.0'), ('gpu_name', 'NVIDIA H200'),
    ('compute_capability', '8.9'), ('precision', 'fp32'),
    ('input_shapes', (('rgb', (1, 3, 768, 1024)), ('thermal', (1, 1, 768, 1024)),
                      ('noise_boxes', (1, 500, 4)))),
])
def test_key_changes_with_each_component(field, value):
    assert replace(KEY, **{field: value}).digest() != KEY.digest()
    assert replace(KEY).digest() == KEY.digest()


def test_builds_once_then_loads_from_the_cache(tmp_path):
    cache, build = EngineCache(tmp_path), Builder()
    first = cache.get(KEY, build, deserialize, build_if_missing=True, log=lambda _: None)
    assert first.built and build.calls == 1 and first.engine == ('engine', first.data)
    engine_path, meta_path = cache.paths(KEY)
    assert first.path == engine_path and engine_path.read_bytes() == first.data
    meta = json.loads(meta_path.read_text())
    assert meta['key'] == KEY.to_dict() and meta['engine_size'] == len(first.data)
    again = cache.get(KEY, build, deserialize)  # building not allowed, not needed
    assert not again.built and again.data == first.data and build.calls == 1
    assert sorted(p.suffix for p in tmp_path.iterdir()) == ['.engine', '.json', '.lock']


def test_missing_engine_is_not_built_unless_allowed(tmp_path):
    build = Builder()
    with pytest.raises(EngineCacheError, match='no cached engine.*efficientmfd_build_engine'):
        EngineCache(tmp_path).get(KEY, build, deserialize)
    assert build.calls == 0


def _corrupt_truncate(engine, meta):
    engine.write_bytes(engine.read_bytes()[:10])


def _corrupt_flip(engine, meta):
    data = bytearray(engine.read_bytes())
    data[-1] ^= 0xFF
    engine.write_bytes(bytes(data))


def _corrupt_meta(engine, meta):
    meta.write_text('{not json')


def _stale_meta(engine, meta):
    data = json.loads(meta.read_text())
    data['key']['tensorrt_version'] = '10.0.0'
    meta.write_text(json.dumps(data))


def _undeserializable(engine, meta):
    # Bytes and metadata agree, but the runtime rejects the engine.
    data = b'GARBAGE' * 10
    engine.write_bytes(data)
    body = json.loads(meta.read_text())
    body.update(engine_size=len(data), engine_sha256=hashlib.sha256(data).hexdigest())
    meta.write_text(json.dumps(body))


def _no_meta(engine, meta):
    meta.unlink()


@pytest.mark.parametrize('damage, reason', [
    (_corrupt_truncate, 'truncated'), (_corrupt_flip, 'sha256'), (_corrupt_meta, 'unreadable'),
    (_stale_meta, 'stale'), (_undeserializable, 'deserialize'), (_no_meta, 'unreadable'),
])
def test_bad_cache_entries_are_rebuilt_or_reported(tmp_path, damage, reason):
    cache, build = EngineCache(tmp_path), Builder()
    cache.get(KEY, build, deserialize, build_if_missing=True, log=lambda _: None)
    damage(*cache.paths(KEY))
    with pytest.raises(EngineCacheError, match=reason):
        cache.get(KEY, build, deserialize)
    messages = []
    rebuilt = cache.get(KEY, build, deserialize, build_if_missing=True, log=messages.append)
    assert rebuilt.built and build.calls == 2 and reason in messages[0]
    assert cache.get(KEY, build, deserialize).data == rebuilt.data  # valid again


def test_force_rebuilds_a_valid_engine(tmp_path):
    cache, build = EngineCache(tmp_path), Builder()
    cache.get(KEY, build, build_if_missing=True, log=lambda _: None)
    forced = cache.get(KEY, build, build_if_missing=True, force=True, log=lambda _: None)
    assert forced.built and build.calls == 2


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    cache = EngineCache(tmp_path)

    def broken():
        raise RuntimeError('builder crashed')

    with pytest.raises(RuntimeError, match='crashed'):
        cache.get(KEY, broken, build_if_missing=True, log=lambda _: None)
    assert not any(p.suffix in ('.engine', '.json', '.tmp') for p in tmp_path.iterdir())
    with pytest.raises(EngineCacheError, match='returned no engine'):
        cache.get(KEY, lambda: b'', build_if_missing=True, log=lambda _: None)


def test_concurrent_requests_build_once_under_the_lock(tmp_path):
    build = Builder(delay_s=0.3)
    results, errors = [], []

    def worker():
        try:
            results.append(EngineCache(tmp_path).get(KEY, build, deserialize,
                                                     build_if_missing=True, log=lambda _: None))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and build.calls == 1
    assert sum(r.built for r in results) == 1 and len({r.data for r in results}) == 1


def test_default_cache_dir_is_outside_the_install_tree(monkeypatch, tmp_path):
    monkeypatch.delenv('EFFICIENTMFD_ENGINE_CACHE', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert default_cache_dir() == tmp_path / 'xdg' / 'efficientmfd_ros' / 'engines'
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert default_cache_dir() == tmp_path / 'home' / '.cache' / 'efficientmfd_ros' / 'engines'
    monkeypatch.setenv('EFFICIENTMFD_ENGINE_CACHE', str(tmp_path / 'mine'))
    assert EngineCache().cache_dir == tmp_path / 'mine'
