"""The clean-up chain's default settings (gain, channel pick, DC blocker), for code that has no ``Config``.

``PipelineConfig`` carries these settings for the live path and ``mer-analyze``; training decodes
its clips through the same chain (``framing.prepare_offline``) and must use the same defaults,
without importing the live pipeline only to read three numbers. The cache key of the decoded
training audio (``train/cache.py``) is built from these, so a changed default re-decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GAIN_DB = 0.0  #: input gain before everything else
DEFAULT_DC_CUTOFF_HZ = 10.0  #: DC blocker cut-off; 0 disables it


@dataclass(frozen=True)
class CleanUpDefaults:
    """What ``framing.prepare_offline`` reads (the ``framing.CleanUp`` protocol), at the defaults."""

    gain_db: float = DEFAULT_GAIN_DB
    pick: tuple[int, ...] | None = None  #: 1-based input channels to mix; None = all
    dc_cutoff_hz: float = DEFAULT_DC_CUTOFF_HZ


CLEANUP = CleanUpDefaults()
