"""Stage config files: YAML -> typed, validated dataclasses; ``key=value`` overrides with dotted keys.

Every training stage has one frozen dataclass config (sections such as ``data``, ``optim`` and
``runtime`` are shared dataclasses from the modules that use them). A config file is plain YAML;
the command line changes any field with a dotted key whose value is read as YAML::

    bodytalk train --config tiny_pretrain optim.epochs=3 data.split.kind=logo \\
        data.datasets.0.classes=[angry,happy] 'data.datasets.0.rename={normal: neutral}'

pydantic validates the dict against the dataclass (types, literals, nested sections, unknown keys
named with their path); each dataclass's ``__post_init__`` checks what types cannot say.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

T = TypeVar("T")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# Decorator for config dataclasses: an unknown key is an error (a typo must not be ignored).
strict = with_config(ConfigDict(extra="forbid"))


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the fix."""


def resolve_path(name: str | Path) -> Path:
    """A config file path, or the name of a committed config (``tiny_pretrain`` ->
    ``train/configs/tiny_pretrain.yaml``)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{Path(name).name.removesuffix('.yaml')}.yaml"
    if packaged.is_file() and path.parent == Path("."):
        return packaged
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config {name}: no such file; give a YAML path or a committed config: {known}")


def load_raw(name: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The config file's mapping with the overrides applied (not yet validated)."""
    path = resolve_path(name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for item in overrides:
        apply_override(raw, item)
    return raw


def apply_override(raw: dict[str, Any], item: str) -> None:
    """``'optim.lr=0.05'`` sets ``raw['optim']['lr'] = 0.05`` in place; list items by index
    (``data.datasets.0.uri=...``); missing mappings are created."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. optim.epochs=3")
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML: {err}") from None
    *parents, leaf = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parents):
        here = ".".join(parents[:depth + 1])
        if isinstance(node, list):
            node = node[_index(node, part, here, item)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override {item!r}: {here} is a value, not a section")
    if isinstance(node, list):
        node[_index(node, leaf, key, item)] = value
    elif isinstance(node, dict):
        node[leaf] = value
    else:
        raise ConfigError(f"override {item!r}: {'.'.join(parents)} is a value, not a section")


def _index(items: list, part: str, where: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"override {item!r}: {where} must be a list index below {len(items)}")
    return int(part)


def parse(cls: type[T], raw: dict[str, Any], where: str = "config") -> T:
    """Validate ``raw`` into ``cls``; every problem is listed with its dotted key."""
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as err:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{where}: {len(lines)} problem(s)\n" + "\n".join(lines)) from None


def load(cls: type[T], name: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Read, override and validate a config file into ``cls``."""
    return parse(cls, load_raw(name, overrides), where=str(resolve_path(name)))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML/JSON types (tuples become lists)."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(dataclasses.asdict(cfg))


def dump(cfg: Any) -> str:
    """The resolved config as YAML (what a run folder records)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
