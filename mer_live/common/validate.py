"""Config tables of the show modules (``[beat]``, ``[sections]``, ``[lighting]``): one-line errors.

Why a helper of their own: the main config (mer_live/config.py) is being refactored; these
dataclasses validate themselves (``__post_init__``) and build from a TOML table with
``config_from_dict`` so they can be wired in without depending on its internals. Every problem
is one ``ShowConfigError`` line that names the table and key, e.g.
``[lighting] fixtures[2].address must be a DMX address in 1..512, got 600``.
"""

from __future__ import annotations

import math
from typing import Any


class ShowConfigError(ValueError):
    """A [beat] / [sections] / [lighting] problem; the message is one line naming the key."""


def check(ok: bool, section: str, key: str, what: str, value: Any) -> None:
    if not ok:
        raise ShowConfigError(f"[{section}] {key} must be {what}, got {value!r}")


def pow2(v: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0


def config_from_dict(cls: type, data: dict[str, Any] | None, section: str) -> Any:
    """``cls(**data)`` with one-line errors: unknown keys and wrong types name the key.

    The dataclass's own ``__post_init__`` checks ranges (``ShowConfigError``). Used for the
    ``[beat]``, ``[sections]`` and ``[lighting]`` tables of the TOML file.
    """
    import dataclasses

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
