"""The whole ``mer-live`` configuration: one ``Config`` of per-section dataclasses.

Validation happens here, at the edge: a TOML file (``load_toml``) and command-line overrides
are checked key by key (unknown keys, wrong types, out-of-range values) and every problem is a
``ConfigError`` with one line that names the key and where it came from, e.g.
``show.toml: [osc] rate_hz must be a number > 0, got "fast"``. Past this module the rest of the
program can trust its config. Paths are only ever opened as data, never executed or evaluated.

Every section dataclass, here and in the other modules (``CaptureConfig``, ``PipelineConfig``,
and every output's and analyser's, which register themselves in ``mer_live.registry``), checks
itself when made, in one style (``mer_live.common.validate``: ranges declared on the fields,
checks across fields in ``__post_init__``). This module coerces types, reads the sections by
introspection (field names and type hints), so a field or a section added there is configurable
here without a change, and words each check's error for where the value came from.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mer_live import registry
from mer_live.common.validate import (
    ConfigValueError,
    ShowConfigError,
    check_fields,
    integer,
    number,
    rule,
    rule_of,
)
from mer_live.live.pipeline import PipelineConfig
from mer_live.sources.capture import CaptureConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib


DEFAULTS = "defaults"  #: the source name of a config built from flags only


class ConfigError(Exception):
    """A configuration problem; the message is one line for the user."""


@dataclass(frozen=True)
class SourceConfig:
    """Where the audio comes from when it is not the live input device."""

    input: Path | None = None  #: rehearse with a file, paced in real time
    play: bool = False  #: also play the file to the output device
    loop: bool = False  #: start the file again when it ends
    demo: bool = False  #: the bundled demo audio instead of a device


@dataclass(frozen=True)
class ModelConfig:
    """Which ONNX model and how to run it."""

    path: Path | None = None  #: None: the shipped default model
    provider: Literal["auto", "cuda", "cpu"] = "auto"
    require_gpu: bool = False  #: refuse to start unless CUDA is really active
    #: onnxruntime intra-op threads (1 keeps the live path predictable)
    threads: int = field(default=1, metadata=integer(0, 256, "an integer in 0..256 (0: all cores)"))
    #: judge music first: silence, talk, applause and line checks between songs send no emotion
    music_gate: bool = True
    presence: Path | None = None  #: the music-presence model (None: the shipped one)
    #: a fused model's pretrained teacher on its own thread (false: the CNN alone, less CPU)
    teacher: bool = True
    #: what the input is: "line" (a desk feed) or "room" (a laptop or room microphone in front of
    #: the PA: the room model and its re-centring, docs/room.md; --room)
    input: Literal["line", "room"] = "line"

    def __post_init__(self) -> None:
        check_fields(self, "model")


@dataclass(frozen=True)
class GuiConfig:
    """The dashboard window."""

    headless: bool = False  #: no window: print live values in the terminal
    #: seconds of arousal/valence history plotted
    history_s: float = field(default=60.0, metadata=number(1, 3600, "a number of seconds in 1..3600"))
    #: seconds of trail on the arousal-valence plane
    trail_s: float = field(default=10.0, metadata=number(0, 3600, "a number of seconds in 0..3600"))
    fullscreen: bool = False
    #: window redraws per second
    fps: float = field(default=30.0, metadata=number(1, 30, "a number in 1..30"))

    def __post_init__(self) -> None:
        check_fields(self, "gui")
        if self.trail_s > self.history_s:
            raise ShowConfigError(f"[gui] trail_s ({self.trail_s}) must not exceed history_s "
                                  f"({self.history_s})")


@dataclass(frozen=True)
class LogConfig:
    #: 0 warnings, 1 info, 2 debug (and tracebacks)
    verbosity: int = field(default=0, metadata=integer(0, 2, "an integer in 0..2"))
    file: Path | None = None  #: also log to this file

    def __post_init__(self) -> None:
        check_fields(self, "log")


@dataclass(frozen=True)
class RunConfig:
    """How long to run (tests, benchmarks) and whether to wait for a missing device."""

    #: stop after this many seconds (None: until stopped)
    duration: float | None = field(default=None, metadata=rule(
        "a number of seconds > 0",
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)))
    record: Path | None = None  #: append one row per estimate to this .csv or .jsonl file

    def __post_init__(self) -> None:
        check_fields(self, "run")


#: The core sections (order, name, dataclass); outputs and analysers register theirs
#: (``mer_live.registry``), each with its place in the file.
_CORE: list[tuple[int, str, type]] = [
    (10, "capture", CaptureConfig), (20, "source", SourceConfig), (30, "model", ModelConfig),
    (40, "pipeline", PipelineConfig), (60, "gui", GuiConfig), (70, "log", LogConfig), (80, "run", RunConfig),
]
_ALL = sorted([*_CORE, *((o, n, c) for o, n, c, _f in registry.sections())], key=lambda s: s[0])

#: Section name -> its dataclass, in file order.
SECTIONS: dict[str, type] = {name: cls for _o, name, cls in _ALL}
#: Sections with nested tables (``[[lighting.fixtures]]``, ``[lighting.mapping]``) build themselves.
NESTED: dict[str, typing.Callable[[Any], Any]] = {
    n: f for _o, n, _c, f in registry.sections() if f is not None
}

#: The whole configuration: one frozen dataclass field per section (``cfg.osc``, ``cfg.midi`` ...),
#: plus ``osc_enabled`` (``[osc] enabled = false`` / ``--no-osc``).
Config = dataclasses.make_dataclass(
    "Config",
    [*((name, cls, field(default_factory=cls)) for name, cls in SECTIONS.items()),
     ("osc_enabled", bool, True)],
    frozen=True,
)
Config.__module__ = __name__

def _show(v: Any) -> str:
    """A value as the user wrote it (strings in double quotes, as TOML does)."""
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if origin in (tuple, list):
        return "a list of " + _plural(args[0] if args else Any)
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        Path: "a path (string)",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings"}.get(tp, _describe(tp))


class _Bad(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert (int -> float, str -> Path, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a)
            except _Bad:
                continue
        raise _Bad
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise _Bad
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Bad
        inner = args[0] if args else Any
        items = [_coerce(v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Bad
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value).strip():
            return Path(value)
        raise _Bad
    if value is None:
        raise _Bad
    return value


def _build_section(
    section: str, cls: type, table: Any, source: str, where: dict[tuple[str, str], str]
) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{section}] must be a table, got {_show(table)}")
    if section in NESTED:
        try:
            return NESTED[section](table)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{source}: {str(e).strip().splitlines()[0]}") from None
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        flag = where.get((section, key))
        who = flag if flag is not None else f"{source}: [{section}] {key}"
        if key not in names:
            known = ["enabled", *names] if section == "osc" else names  # [osc] enabled: read by build_config
            raise ConfigError(f"{source}: unknown key [{section}] {key} (known: {', '.join(known)})")
        tp = hints[key]
        r = rule_of(cls, key)
        try:
            kwargs[key] = _coerce(value, tp)
        except _Bad:
            raise ConfigError(f"{who} must be {r.want if r else _describe(tp)}, got {_show(value)}") from None
    try:
        return cls(**kwargs)  # every section checks itself when made (mer_live.common.validate)
    except ConfigValueError as e:
        if e.section == section and e.key in kwargs:  # a key of this table: name its flag or file
            flag = where.get((section, e.key))
            who = flag if flag is not None else f"{source}: [{section}] {e.key}"
            raise ConfigError(f"{who} must be {e.want}, got {_show(table[e.key])}") from None
        raise _section_error(e, section, source, where) from None
    except (ValueError, TypeError) as e:
        raise _section_error(e, section, source, where) from None


def _section_error(e: Exception, section: str, source: str, where: dict[tuple[str, str], str]) -> ConfigError:
    """A section's own check, as one line that names where its values came from."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    for own in (f"{section}.", f"[{section}] "):  # the section's own checks name it already
        if msg.startswith(own):
            msg = msg[len(own) :]
    flags = sorted({o for (s, _k), o in where.items() if s == section})
    if flags and source == DEFAULTS:
        return ConfigError(f"{' / '.join(flags)}: {msg}")
    origin = " / ".join([source, *flags])
    return ConfigError(f"{origin}: [{section}] {msg}")


def build_config(
    raw: dict[str, Any],
    source: str = DEFAULTS,
    overrides: dict[tuple[str, str], tuple[Any, str]] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validate a raw dict (from TOML) plus overrides ``{(section, key): (value, "--flag")}``.

    Overrides win over the file. Relative paths written in a file are taken relative to the
    file's folder (``base_dir``), so a show folder can be moved as a whole; paths from flags are
    relative to the current directory.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a table at the top level")
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(SECTIONS)})")
    merged: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {_show(table)}")
        merged[name] = dict(table)
    if base_dir is not None:
        for sec, key in _path_fields():
            v = merged.get(sec, {}).get(key)
            if isinstance(v, str) and v.strip() and not Path(v).expanduser().is_absolute():
                merged[sec][key] = str(base_dir / v)
    where: dict[tuple[str, str], str] = {}
    for (sec, key), (value, flag) in (overrides or {}).items():
        if sec not in SECTIONS:
            raise ValueError(f"override for unknown section {sec!r}")
        merged.setdefault(sec, {})[key] = value
        where[(sec, key)] = flag
    osc_table = merged.setdefault("osc", {})
    enabled = osc_table.pop("enabled", True)
    if not isinstance(enabled, bool):
        who = where.get(("osc", "enabled"), f"{source}: [osc] enabled")
        raise ConfigError(f"{who} must be true or false, got {_show(enabled)}")
    parts = {
        name: _build_section(name, cls, merged.get(name, {}), source, where) for name, cls in SECTIONS.items()
    }
    return Config(**parts, osc_enabled=enabled)


def _path_fields() -> dict[tuple[str, str], Any]:
    out = {}
    for sec, cls in SECTIONS.items():
        for key, tp in typing.get_type_hints(cls).items():
            if tp is Path or Path in typing.get_args(tp):
                out[(sec, key)] = tp
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; unreadable or malformed files are a one-line ``ConfigError``."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a folder: {p}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p.name}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p.name}: not valid TOML: not UTF-8 text") from None


def load_toml(
    path: str | Path, overrides: dict[tuple[str, str], tuple[Any, str]] | None = None
) -> Config:
    """Read, validate and build a ``Config`` from a TOML file (plus optional flag overrides)."""
    p = Path(path)
    return build_config(read_toml(p), source=p.name, overrides=overrides, base_dir=p.resolve().parent)


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config as plain TOML-able data (for ``--print-config``)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        return v

    out = {name: plain(getattr(cfg, name)) for name in SECTIONS}
    out["osc"] = {"enabled": cfg.osc_enabled, **out["osc"]}
    return out


def dumps_toml(cfg: Config) -> str:
    """A minimal TOML writer for ``--print-config`` (unset values are written as comments)."""
    lines: list[str] = []
    for name, table in to_dict(cfg).items():
        lines.append(f"[{name}]")
        for key, v in table.items():
            if v is None:
                lines.append(f"# {key} =   (not set)")
            else:
                lines.append(f"{key} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _show(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return repr(v)
