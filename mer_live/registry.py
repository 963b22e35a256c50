"""The parts that plug in: every output in ``outputs/`` and every analyser in ``analysers/``
declares itself here, in its own file, with ``register_output`` / ``register_analyser``.

Why: adding an output protocol used to mean editing the config (a field, a nested-table entry),
the CLI's parser and its flag table, the assembly and the app; adding an analyser meant a fixed
list of event kinds and a special case in the pipeline. Now a part's one file says:

- its config section (a dataclass, validated in ``__post_init__``; ``config.py`` collects the
  sections from here, in ``order``), and how to read a nested table (``from_dict``) if it has one;
- its command-line flags (``Flag``: the argparse arguments and the config key each one sets;
  ``cli.build_parser`` / ``overrides_from`` collect them);
- its factory (``build``: the configured part, or None when it is off) and, for outputs, the one
  status line mer-live prints when it starts (``status``);
- for analysers: the event kinds it publishes, which of them are rhythm (sent on a steady beat
  without the music gate), and the continuous values an event carries onto the estimate (the
  beat's ``bpm`` and count).

``discover()`` imports every module of the two packages once, so a new file is found without
an import anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class StartError(Exception):
    """A part that cannot be built or started: one line for the user and the exit code (2 for a
    usage, config or model problem, 1 for a runtime one)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


#: argparse group titles, in the order ``--help`` shows them
GROUPS = ("input", "estimation", "OSC", "display and run", "tempo sync")


@dataclass(frozen=True)
class Flag:
    """One command-line flag: ``args``/``kwargs`` for argparse (``default`` is always "not
    given"), and the ``(section, key)`` it sets in the config, through ``convert``. ``also``:
    more keys the same flag sets, ``(section, key, value)`` with value a function of the flag's.
    ``command``: instead of a config key, a function of the config whose text is printed before
    mer-live exits (``--list-midi``)."""

    args: tuple[str, ...]
    kwargs: dict[str, Any]
    target: tuple[str, str] | None = None
    convert: Callable[[Any], Any] | None = None
    also: tuple[tuple[str, str, Callable[[Any], Any]], ...] = ()
    group: str = "display and run"
    command: Callable[[Any], str] | None = None

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.args[-1].lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class OutputSpec:
    """An output: where the estimates and events go."""

    name: str  #: its config section (``[midi]``), or the name it is known by
    order: int  #: its place among the config sections and the outputs
    build: Callable[[Any], Any | None]  #: the whole Config -> the output, or None when it is off
    config: type | None = None  #: its section's dataclass (None: it reads another section)
    from_dict: Callable[[dict[str, Any]], Any] | None = None  #: a section with nested tables
    flags: tuple[Flag, ...] = ()
    status: Callable[[Any, Any], str | None] | None = None  #: (output, Config) -> the start-up line


@dataclass(frozen=True)
class AnalyserSpec:
    """A block analyser: hears every cleaned block, publishes events (and values on them)."""

    name: str  #: its config section (``[beat]``)
    order: int  #: its place among the config sections
    run_order: int  #: its place among the analysers on the pipeline thread (after what it reads)
    config: type
    #: (its section's config, the analysers built before it by name) -> the analyser, or None
    build: Callable[[Any, dict[str, Any]], Any | None]
    event_kinds: tuple[str, ...] = ()
    rhythm_kinds: tuple[str, ...] = ()  #: kinds that go out on a steady rhythm without music
    #: event kind -> the values it carries onto the estimate (``Estimate`` field -> value)
    values: dict[str, Callable[[Any], dict[str, Any]]] = field(default_factory=dict)
    flags: tuple[Flag, ...] = ()


_OUTPUTS: dict[str, OutputSpec] = {}
_ANALYSERS: dict[str, AnalyserSpec] = {}
_found = False


def register_output(spec: OutputSpec) -> OutputSpec:
    _OUTPUTS[spec.name] = spec
    return spec


def register_analyser(spec: AnalyserSpec) -> AnalyserSpec:
    _ANALYSERS[spec.name] = spec
    return spec


def discover() -> None:
    """Import every module in ``mer_live.outputs`` and ``mer_live.analysers`` (once), so each
    registers itself."""
    global _found
    if _found:
        return
    _found = True
    for pkg in ("mer_live.outputs", "mer_live.analysers"):
        mod = importlib.import_module(pkg)
        for info in pkgutil.iter_modules(mod.__path__, pkg + "."):
            importlib.import_module(info.name)


def outputs() -> list[OutputSpec]:
    """The registered outputs, in ``order``."""
    discover()
    return sorted(_OUTPUTS.values(), key=lambda s: s.order)


def output(name: str) -> OutputSpec:
    discover()
    return _OUTPUTS[name]


def analysers() -> list[AnalyserSpec]:
    """The registered analysers, in config ``order``."""
    discover()
    return sorted(_ANALYSERS.values(), key=lambda s: s.order)


def analysers_run_order() -> list[AnalyserSpec]:
    """The registered analysers in the order they hear a block (each after what it reads)."""
    return sorted(analysers(), key=lambda s: s.run_order)


def sections() -> list[tuple[int, str, type, Callable[[dict[str, Any]], Any] | None]]:
    """``(order, name, dataclass, from_dict)`` of every registered config section."""
    out = [(s.order, s.name, s.config, s.from_dict) for s in outputs() if s.config is not None]
    out += [(s.order, s.name, s.config, None) for s in analysers()]
    return sorted(out, key=lambda t: t[0])


def flags() -> list[Flag]:
    """Every registered part's flags, outputs and analysers in ``order``."""
    parts: list[Any] = sorted([*outputs(), *analysers()], key=lambda s: s.order)
    return [f for p in parts for f in p.flags]


def event_kinds() -> tuple[str, ...]:
    """Every kind of event an analyser may publish (OSC ``/mer/<kind> i``)."""
    return tuple(k for a in analysers() for k in a.event_kinds)


def rhythm_kinds() -> tuple[str, ...]:
    """The kinds that go out on a steady rhythm alone (``estimate.beats_go_out``)."""
    return tuple(k for a in analysers() for k in a.rhythm_kinds)


def value_rules() -> dict[str, Callable[[Any], dict[str, Any]]]:
    """Event kind -> the estimate values it carries (the beat: ``bpm`` and ``beats``)."""
    return {k: fn for a in analysers() for k, fn in a.values.items()}
