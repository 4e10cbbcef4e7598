"""Typed dataclass configs from plain dicts, YAML files and `--key=value` overrides: the one
reader of the model, train, dataset and augmentation configs.

`from_plain(cls, data)` builds a (nested) dataclass from a dict, checking every key and value
against the field's type annotation; `apply_overrides(data, ['--a.b=1'])` edits the plain dict
before that check, so an override gets the same type checking as the file. Values of overrides
are parsed as YAML scalars or flow collections (`--optim.lr=1e-4`, `--gmta.interval=0`,
`--schedule.milestones=[800,900]`). Errors raise `ConfigError` naming the key.
"""
from dataclasses import MISSING, fields, is_dataclass
import types
import typing

import yaml

# scalar field types taken as they are, and how a message names them
_EXACT = {bool: 'true or false', int: 'an integer', str: 'a string'}


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names it."""


def _type_name(tp: typing.Any) -> str:
    return getattr(tp, '__name__', None) or str(tp).replace('typing.', '')


def _coerce(value: typing.Any, tp: typing.Any, where: str) -> typing.Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f'{where}: got {value!r}, expected '
                          f'{" or ".join(_type_name(o) for o in options)}')
    if is_dataclass(tp):
        return from_plain(tp, value, where, root=False)
    if tp is typing.Any:
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where} must be a list, got {value!r}')
        args = typing.get_args(tp)
        item = args[0] if args else typing.Any
        items = (_coerce(v, item, f'{where}[{i}]') for i, v in enumerate(value))
        return list(items) if list in (origin, tp) else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{where} must be a mapping, got {value!r}')
        return dict(value)
    if tp in _EXACT:
        # bool is an int to Python, never to a config
        if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
            raise ConfigError(f'{where} must be {_EXACT[tp]}, got {value!r}')
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML reads 1e-4 (no dot) as a string.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where} must be a number, got {value!r}')
        return float(value)
    raise ConfigError(f'{where}: unsupported field type {_type_name(tp)}')


def from_plain(cls: typing.Any, data: typing.Any, where: str = 'config', root: bool = True,
               error: type[Exception] = ConfigError) -> typing.Any:
    """An instance of dataclass `cls` from the dict `data` (missing keys keep their defaults).

    `where` names `data` in messages; keys of a `root` mapping are named bare, those of a nested
    one as `where.key`. Errors raise `error` (the caller's own type, a ValueError).
    """
    try:
        return _from_plain(cls, data, where, root)
    except ConfigError as exc:
        if error is ConfigError or isinstance(exc, error):
            raise
        raise error(str(exc)) from None


def _from_plain(cls: typing.Any, data: typing.Any, where: str, root: bool) -> typing.Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping, got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown}; known: {sorted(known)}')
    kwargs = {}
    for name, value in data.items():
        prefix = '' if root else f'{where}.'
        kwargs[name] = _coerce(value, hints[name], f'{prefix}{name}')
    missing = [f.name for f in known.values() if f.name not in kwargs
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f'{where}: missing required key(s) {missing}')
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f'{where}: {exc}') from exc


def to_plain(obj: typing.Any) -> typing.Any:
    """Dataclasses -> dicts and tuples -> lists, recursively (YAML- and JSON-safe)."""
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def parse_override(text: str) -> tuple[list[str], object]:
    """`'--a.b=value'` -> `(['a', 'b'], parsed value)`."""
    if not text.startswith('--') or '=' not in text:
        raise ConfigError(f'override {text!r} must look like --key=value (e.g. --optim.lr=1e-4)')
    key, raw = text[2:].split('=', 1)
    path = key.split('.')
    if not all(path):
        raise ConfigError(f'override {text!r}: empty key segment')
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError as exc:
        raise ConfigError(f'override {text!r}: cannot parse the value: {exc}') from exc
    if isinstance(value, str) and raw.strip().lower() in ('none', 'null', '~'):
        value = None
    return path, value


def apply_overrides(cls: type, data: dict, overrides: typing.Iterable[str]) -> dict:
    """A copy of plain `data` with each `--key=value` of `overrides` set.

    Keys are checked against the dataclass `cls` so a typo names the known keys.
    """
    data = yaml.safe_load(yaml.safe_dump(data or {}))
    for text in overrides:
        path, value = parse_override(text)
        node: dict = data
        node_cls: typing.Any = cls
        for depth, part in enumerate(path):
            names = {f.name for f in fields(node_cls)} if node_cls else None
            if names is not None and part not in names:
                key = '.'.join(path[:depth + 1])
                raise ConfigError(f'override {text!r}: unknown key {key!r}; '
                                  f'known: {sorted(names)}')
            if depth == len(path) - 1:
                node[part] = value
                break
            hint = typing.get_type_hints(node_cls)[part] if node_cls else None
            node_cls = hint if hint is not None and is_dataclass(hint) else None
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
    return data
