"""On-disk cache of serialized TensorRT engines, outside the install tree.

A TensorRT engine is only valid for the exact ONNX graph, TensorRT version, GPU model, compute
capability, precision and input shapes it was built for, so the cache key hashes all of them. Each
engine ``<digest>.engine`` has a sidecar ``<digest>.json`` holding the full key plus the engine's
size and sha256; an engine is used only when that metadata matches and the bytes check out, and
(when the caller passes a ``validate`` function, e.g. TensorRT deserialization) when they
deserialize. A missing, stale or corrupt engine is rebuilt when building is allowed, and reported
with the reason otherwise -- never trusted by its file name. Writes are atomic (temporary file +
``os.replace``) and happen under an ``fcntl`` lock, so two processes building the same engine do
not clobber each other.

Default location: ``$EFFICIENTMFD_ENGINE_CACHE``, else
``$XDG_CACHE_HOME/efficientmfd_ros/engines``, else ``~/.cache/efficientmfd_ros/engines``.
"""
from contextlib import contextmanager
from dataclasses import asdict, dataclass
import datetime
import fcntl
import hashlib
import json
import os
from pathlib import Path
import tempfile
import time
from typing import Any, Callable, ContextManager, Iterator

META_FORMAT = 'efficientmfd_ros.engine/1'


class EngineCacheError(RuntimeError):
    """No usable engine in the cache and building was not allowed (or the build failed)."""


def default_cache_dir() -> Path:
    env = os.environ.get('EFFICIENTMFD_ENGINE_CACHE')
    if env:
        return Path(env).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'efficientmfd_ros' / 'engines'


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; input_shapes: ((tensor name, shape), ...) per input."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shapes: tuple

    def to_dict(self) -> dict:
        data = asdict(self)
        data['input_shapes'] = [[name, list(shape)] for name, shape in self.input_shapes]
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass
class CachedEngine:
    """data: the serialized engine; engine: what ``validate`` returned (None without one);
    keepalive: objects the engine depends on (e.g. the TensorRT runtime that deserialized it)."""

    data: bytes
    engine: Any
    path: Path
    built: bool
    keepalive: Any = None


class EngineCache:
    def __init__(self, cache_dir: str | Path | None = None,
                 lock_timeout_s: float = 3600.0) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.lock_timeout_s = lock_timeout_s

    def paths(self, key: EngineKey) -> tuple[Path, Path]:
        """(engine file, metadata file) for ``key``."""
        stem = self.cache_dir / key.digest()
        return stem.with_suffix('.engine'), stem.with_suffix('.json')

    def lookup(self, key: EngineKey) -> tuple[bytes | None, str]:
        """(engine bytes, '') when the cached engine's metadata and bytes check out, else
        (None, why not)."""
        engine_path, meta_path = self.paths(key)
        if not engine_path.exists() and not meta_path.exists():
            return None, f'no cached engine at {engine_path}'
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            return None, f'engine metadata {meta_path} is unreadable ({exc})'
        if not isinstance(meta, dict) or meta.get('format') != META_FORMAT:
            return None, f'engine metadata {meta_path} has an unknown format'
        if meta.get('key') != key.to_dict():
            return None, f'engine metadata {meta_path} is stale (built for another key)'
        try:
            data = engine_path.read_bytes()
        except OSError as exc:
            return None, f'engine {engine_path} is unreadable ({exc})'
        if len(data) != meta.get('engine_size'):
            return None, (f'engine {engine_path} is truncated or altered ({len(data)} bytes, '
                          f'metadata says {meta.get("engine_size")})')
        if hashlib.sha256(data).hexdigest() != meta.get('engine_sha256'):
            return None, f'engine {engine_path} fails its sha256 check (corrupt)'
        return data, ''

    def get(self, key: EngineKey, build: Callable[[], bytes],
            validate: Callable[[bytes], Any] | None = None, build_if_missing: bool = False,
            force: bool = False, log: Callable[[str], None] = print) -> CachedEngine:
        """The cached engine for ``key``, building (and caching) it only if allowed.

        ``validate(data)`` deserializes the bytes; if it raises or returns None the engine counts
        as corrupt. ``force`` rebuilds even when a valid engine is cached.
        """
        engine_path, _ = self.paths(key)
        reason = 'rebuild requested'
        if not force:
            found = self._load_valid(key, validate)
            if isinstance(found, CachedEngine):
                return found
            reason = found
        if not build_if_missing:
            raise EngineCacheError(
                f'no usable TensorRT engine: {reason}. Build it ahead of time with '
                f'efficientmfd_build_engine, or set build_engine_if_missing: true')
        with self._locked(key):
            if not force:
                # Another process may have built it while this one waited for the lock.
                found = self._load_valid(key, validate)
                if isinstance(found, CachedEngine):
                    return found
            log(f'building TensorRT engine ({reason}); this can take minutes -> {engine_path}')
            t0 = time.monotonic()
            data = build()
            if not isinstance(data, (bytes, bytearray)) or not data:
                raise EngineCacheError('the TensorRT builder returned no engine (see its log)')
            data = bytes(data)
            engine = validate(data) if validate is not None else None
            if validate is not None and engine is None:
                raise EngineCacheError('a freshly built engine failed to deserialize')
            self._store(key, data)
            log(f'engine built in {time.monotonic() - t0:.0f} s and cached at {engine_path}')
            return CachedEngine(data, engine, engine_path, built=True)

    def _load_valid(self, key: EngineKey,
                    validate: Callable[[bytes], Any] | None) -> CachedEngine | str:
        data, reason = self.lookup(key)
        if data is None:
            return reason
        engine = None
        if validate is not None:
            try:
                engine = validate(data)
            except Exception as exc:  # any deserialization failure means a corrupt engine
                return f'cached engine failed to deserialize ({exc})'
            if engine is None:
                return 'cached engine failed to deserialize'
        return CachedEngine(data, engine, self.paths(key)[0], built=False)

    def _store(self, key: EngineKey, data: bytes) -> None:
        engine_path, meta_path = self.paths(key)
        meta = {'format': META_FORMAT, 'key': key.to_dict(), 'digest': key.digest(),
                'engine_size': len(data), 'engine_sha256': hashlib.sha256(data).hexdigest(),
                'created': datetime.datetime.now(datetime.timezone.utc).isoformat()}
        # Metadata goes last: an engine without matching metadata is never used.
        _atomic_write(engine_path, data)
        _atomic_write(meta_path, json.dumps(meta, indent=2).encode())

    def _locked(self, key: EngineKey) -> ContextManager[None]:
        return file_lock(self.cache_dir / f'{key.digest()}.lock', self.lock_timeout_s,
                         'the engine build lock')


@contextmanager
def file_lock(lock_path: str | Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path`` (created if needed); EngineCacheError
    naming ``what`` after ``timeout_s`` of waiting. Other processes doing the same wait."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, 'a+') as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineCacheError(f'timed out waiting for {what} {lock_path}') from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
