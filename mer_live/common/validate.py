"""How every config section checks itself: one style, one-line errors that name the key.

Each section is a dataclass that checks itself in ``__post_init__`` (``validate()``, where a
class has one, re-runs the same checks after a change). A single field's range is declared on
the field (``field(default=..., metadata=number(lo, hi, "what a good value is"))``) and checked
by ``check_fields``; checks across fields call ``check``. Both raise ``ConfigValueError``, e.g.
``[lighting] fixtures[2].address must be a DMX address in 1..512, got 600``, which carries the
section, key, what was wanted and the value, so ``mer_live.config`` can name the flag or the
file the value came from (``--hop must be a number of seconds in 0.01..10, got 0.0``) and a
wrong type gets the same wording as a wrong range. Tables with nested keys build with
``config_from_dict``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Self


class ShowConfigError(ValueError):
    """A config section's problem; the message is one line that names the section (and key)."""


class ConfigValueError(ShowConfigError):
    """A bad value of one key: it carries the section, key, what was wanted and the value."""

    def __init__(self, section: str, key: str, want: str, value: Any) -> None:
        super().__init__(f"[{section}] {key} must be {want}, got {value!r}")
        self.section, self.key, self.want, self.value = section, key, want, value


class Rule(NamedTuple):
    """A field's range: ``ok(value)`` and what a good value is, in words."""

    ok: Callable[[Any], bool]
    want: str


def check(ok: bool, section: str, key: str, what: str, value: Any) -> None:
    """Raise ``ConfigValueError`` unless ``ok``: for checks across fields or on nested keys."""
    if not ok:
        raise ConfigValueError(section, key, what, value)


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def rule(want: str, ok: Callable[[Any], bool]) -> dict[str, Rule]:
    """Field metadata: any predicate, and what a good value is in words."""
    return {"rule": Rule(ok, want)}


def number(lo: float, hi: float, want: str, optional: bool = False) -> dict[str, Rule]:
    """Field metadata: a finite number in ``lo..hi`` (``None`` too where ``optional``)."""
    return {"rule": Rule(lambda v: (optional and v is None) or (_real(v) and lo <= v <= hi), want)}


def integer(lo: int, hi: int, want: str, optional: bool = False) -> dict[str, Rule]:
    """Field metadata: an integer (not a bool) in ``lo..hi`` (``None`` too where ``optional``)."""
    return {"rule": Rule(lambda v: (optional and v is None)
                         or (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi), want)}


def flag() -> dict[str, Rule]:
    """Field metadata: true or false."""
    return {"rule": Rule(lambda v: isinstance(v, bool), "true or false")}


def rule_of(cls: type, key: str) -> Rule | None:
    """The declared rule of ``cls``'s field ``key``, if it has one."""
    for f in dataclasses.fields(cls):
        if f.name == key:
            return f.metadata.get("rule")
    return None


class Checked:
    """A config section's ``validate()``: re-run the checks of ``__post_init__`` after a change
    (a GUI edit, a test poking a field), so a section has one set of checks, not two."""

    def validate(self) -> Self:
        """Check again; return self for chaining."""
        self.__post_init__()  # type: ignore[attr-defined]
        return self


def check_fields(obj: Any, section: str) -> None:
    """Check every field of ``obj`` that declares a rule, in field order."""
    for f in dataclasses.fields(obj):
        r = f.metadata.get("rule")
        if r is not None:
            v = getattr(obj, f.name)
            try:
                ok = bool(r.ok(v))
            except TypeError:
                ok = False
            if not ok:
                raise ConfigValueError(section, f.name, r.want, v)


def pow2(v: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0


def config_from_dict(cls: type, data: dict[str, Any] | None, section: str) -> Any:
    """``cls(**data)`` with one-line errors: unknown keys and wrong types name the key.

    The dataclass's own ``__post_init__`` checks ranges (``ShowConfigError``). Used for the
    ``[beat]``, ``[sections]`` and ``[lighting]`` tables of the TOML file.
    """
    if data is not None and not isinstance(data, dict):
        raise ShowConfigError(f"[{section}] must be a table of keys, got {data!r}")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ShowConfigError(f"[{section}] unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    for k, v in data.items():
        default = fields[k].default
        if default is dataclasses.MISSING or isinstance(default, (list, tuple)):
            continue
        if isinstance(default, bool):
            check(isinstance(v, bool), section, k, "true or false", v)
        elif isinstance(default, int):
            check(isinstance(v, int) and not isinstance(v, bool), section, k, "an integer", v)
        elif isinstance(default, float):
            check(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                  section, k, "a number", v)
            data[k] = float(v)
        elif isinstance(default, str):
            check(isinstance(v, str), section, k, "a string", v)
    return cls(**data)
