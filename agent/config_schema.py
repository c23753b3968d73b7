"""The declarative config schema both configuration files use (the device's
``agent/config.py`` and the hub's ``agent/hub/service/hub_config.py``).

A config is a frozen dataclass per TOML section whose fields are declared with
``spec(...)`` (type, default or ``REQUIRED``, documentation, bounds). From that one
declaration come the validator (``build_section``: every problem as one line naming
the key path, e.g. ``camera.fps: must be 1–120, got 0``), the file reader
(``read_toml``) and the documented example (``render_sections``).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

REQUIRED: Any = object()


def spec(
    default: Any,
    doc: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: str | None = None,
    multiple_of: int | None = None,
    length: tuple[int, ...] | None = None,
    example: Any = None,
) -> Any:
    """Declare a config key: its default (or REQUIRED), documentation and constraints."""
    meta = {
        "doc": doc,
        "min": min,
        "max": max,
        "choices": choices,
        "pattern": pattern,
        "multiple_of": multiple_of,
        "length": length,
        "example": example,
        "required": default is REQUIRED,
    }
    if default is REQUIRED:
        return field(metadata=meta)
    if isinstance(default, list):
        items: list[Any] = list(default)
        return field(default_factory=lambda: list(items), metadata=meta)
    return field(default=default, metadata=meta)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _fmt(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _check_number(path: str, value: float, meta: dict[str, Any], problems: list[str]) -> bool:
    lo, hi = meta["min"], meta["max"]
    if lo is not None and hi is not None and not lo <= value <= hi:
        problems.append(f"{path}: must be {_fmt(lo)}–{_fmt(hi)}, got {_fmt(value)}")
        return False
    if lo is not None and value < lo:
        problems.append(f"{path}: must be at least {_fmt(lo)}, got {_fmt(value)}")
        return False
    if hi is not None and value > hi:
        problems.append(f"{path}: must be at most {_fmt(hi)}, got {_fmt(value)}")
        return False
    return True


def coerce_value(
    path: str, kind: Any, value: Any, meta: dict[str, Any], problems: list[str]
) -> Any:
    """Return the validated value, or None after appending a problem."""
    if kind is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: must be true or false, got {_describe(value)}")
            return None
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: must be an integer, got {_describe(value)}")
            return None
        if not _check_number(path, value, meta, problems):
            return None
        if meta["multiple_of"] and value % meta["multiple_of"]:
            problems.append(f"{path}: must be a multiple of {meta['multiple_of']}, got {value}")
            return None
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: must be a number, got {_describe(value)}")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            problems.append(f"{path}: must be a finite number, got {value}")
            return None
        return float(value) if _check_number(path, value, meta, problems) else None
    if kind is str or kind is Path:
        if not isinstance(value, str):
            problems.append(f"{path}: must be a string, got {_describe(value)}")
            return None
        if meta["choices"] and value not in meta["choices"]:
            problems.append(f"{path}: must be one of {', '.join(meta['choices'])}, got {value!r}")
            return None
        if meta["pattern"] and not re.fullmatch(meta["pattern"], value):
            problems.append(f"{path}: does not match {meta['pattern']}, got {value!r}")
            return None
        if kind is Path:
            if not value:
                problems.append(f"{path}: must not be empty")
                return None
            return Path(value)
        return value
    if typing.get_origin(kind) is list:
        (item_kind,) = typing.get_args(kind)
        if not isinstance(value, list):
            problems.append(f"{path}: must be an array, got {_describe(value)}")
            return None
        if meta["length"] and len(value) not in meta["length"]:
            allowed = " or ".join(str(n) for n in meta["length"])
            problems.append(f"{path}: must have {allowed} items, got {len(value)}")
            return None
        out = []
        for i, item in enumerate(value):
            got = coerce_value(f"{path}[{i}]", item_kind, item, meta, problems)
            if got is None:
                return None
            out.append(got)
        return out
    raise TypeError(f"unsupported config type {kind!r} at {path}")  # a schema bug, not user input


def build_section(name: str, cls: type[Any], raw: Any, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{name}: must be a table, got {_describe(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            problems.append(f"{name}.{key}: unknown key")
    values: dict[str, Any] = {}
    before = len(problems)
    for fname, f in fields.items():
        if fname not in raw:
            if f.metadata.get("required"):
                problems.append(f"{name}.{fname}: required, not set")
            continue
        got = coerce_value(f"{name}.{fname}", hints[fname], raw[fname], dict(f.metadata), problems)
        if got is not None:
            values[fname] = got
    if len(problems) != before:
        return None
    try:
        return cls(**values)
    except TypeError:
        return None


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file; every failure is a ConfigError naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError([f"config: {path}: file not found"]) from exc
    except IsADirectoryError as exc:
        raise ConfigError([f"config: {path}: is a directory"]) from exc
    except PermissionError as exc:
        raise ConfigError([f"config: {path}: permission denied"]) from exc
    except OSError as exc:  # e.g. a path through a regular file, an I/O error
        raise ConfigError([f"config: {path}: cannot read ({exc.strerror or exc})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"config: {path}: not UTF-8 text"]) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config: {path}: invalid TOML ({exc})"]) from exc


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return f'"{value}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def _constraint_text(meta: dict[str, Any]) -> str:
    parts = []
    if meta["choices"]:
        parts.append("one of " + ", ".join(meta["choices"]))
    if meta["min"] is not None and meta["max"] is not None:
        parts.append(f"{_fmt(meta['min'])}–{_fmt(meta['max'])}")
    if meta["multiple_of"]:
        parts.append(f"multiple of {meta['multiple_of']}")
    return f" ({'; '.join(parts)})" if parts else ""


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def render_sections(header: list[str], sections: dict[str, type[Any]]) -> str:
    """The documented example: every key with its default (or an example when required)."""
    lines = list(header)
    for name, cls in sections.items():
        lines += ["", f"[{name}]", f"# {(cls.__doc__ or '').strip()}"]
        for f in dataclasses.fields(cls):
            meta = dict(f.metadata)
            lines.append(f"# {meta['doc']}{_constraint_text(meta)}")
            if meta["required"]:
                lines.append(f"{f.name} = {toml_value(meta['example'])}    # required")
            else:
                lines.append(f"{f.name} = {toml_value(_default_of(f))}")
    return "\n".join(lines) + "\n"
