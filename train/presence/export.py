"""The presence net to ONNX with its card, and the check that the runtime loads it (``train.export``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .net import PresenceNet


def export(model: PresenceNet, path: Path, card_extra: dict[str, Any] | None = None) -> Path:
    """``path`` (.onnx) + card through ``train.export.export_onnx`` with the presence contract
    (one output ``music``, ``[batch, 1]``), parity checked within 1e-4."""
    from ..export import export_onnx

    return export_onnx(
        model,
        Path(path),
        sample_rate=model.cfg.sample_rate,
        window_samples=model.cfg.window_samples,
        name=Path(path).stem,
        card_extra=card_extra,
        outputs=("music",),
        output_name="music",
        scale="0..1, probability that music is playing",
    )
