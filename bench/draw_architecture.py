"""Draw docs/architecture.png: mer_live's packages and the way audio flows through them.

``python -m bench.draw_architecture [OUT.png]`` (matplotlib, from the [train] extra). The boxes name
the packages of mer_live/ and the modules in each, read from the tree itself, so the picture
follows the layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (package, title, x, y): where each box goes (left to right: the flow of audio)
BOXES = [
    ("sources", "sources/\naudio in", 0.0, 2.0),
    ("live", "live/\nthe pipeline thread", 2.2, 2.0),
    ("inference", "inference/\nonnxruntime models", 2.2, 0.0),
    ("analysers", "analysers/\nblock analysers", 2.2, 4.0),
    ("outputs", "outputs/\nsinks", 4.6, 2.0),
    ("ui", "ui/\nthe window", 4.6, 4.3),
    ("common", "common/\nshared rules", 0.0, 0.0),
]
ARROWS = [
    ("sources", "live", "ring buffer"),
    ("live", "inference", "windows"),
    ("inference", "live", ""),
    ("live", "analysers", "cleaned blocks"),
    ("analysers", "live", ""),
    ("live", "outputs", "Estimate, Event"),
    ("live", "ui", "History"),
]
W, H = 1.8, 1.6


def modules(pkg: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "mer_live" / pkg).glob("*.py") if p.stem != "__init__")


def draw(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 7.2), dpi=100)
    centre = {}
    for pkg, title, x, y in BOXES:
        ax.add_patch(FancyBboxPatch((x, y), W, H, boxstyle="round,pad=0.05", fc="#eef3fb", ec="#345"))
        ax.text(x + W / 2, y + H - 0.08, title, ha="center", va="top", fontsize=10, weight="bold")
        mods = modules(pkg)
        if len(mods) > 7:  # two columns
            half = (len(mods) + 1) // 2
            mods = [f"{a:<11} {b}" for a, b in zip(mods[:half], [*mods[half:], ""][:half], strict=True)]
        ax.text(x + W / 2, y + H - 0.55, "\n".join(mods), ha="center", va="top", fontsize=7.5,
                multialignment="left",
                family="monospace", color="#234")
        centre[pkg] = (x + W / 2, y + H / 2)
    for a, b, label in ARROWS:
        (x0, y0), (x1, y1) = centre[a], centre[b]
        dx, dy = x1 - x0, y1 - y0
        # from edge to edge, offset so that a pair of opposite arrows do not overlap
        off = 0.15 if (b, a) in {(p, q) for p, q, _ in ARROWS} and a > b else -0.15 if (b, a) in {
            (p, q) for p, q, _ in ARROWS} else 0.0
        sx = x0 + (W / 2 + 0.05) * (1 if dx > 0 else -1 if dx < 0 else 0) + (off if dx == 0 else 0)
        sy = y0 + (H / 2 + 0.05) * (1 if dy > 0 else -1 if dy < 0 else 0) + (off if dy == 0 else 0)
        ex = x1 - (W / 2 + 0.05) * (1 if dx > 0 else -1 if dx < 0 else 0) + (off if dx == 0 else 0)
        ey = y1 - (H / 2 + 0.05) * (1 if dy > 0 else -1 if dy < 0 else 0) + (off if dy == 0 else 0)
        ax.annotate("", (ex, ey), (sx, sy), arrowprops=dict(arrowstyle="->", color="#345", lw=1.4))
        if label:
            ax.text((sx + ex) / 2 + (0.08 if dx == 0 else 0), (sy + ey) / 2 + (0.08 if dy == 0 else 0),
                    label, fontsize=8, color="#345", ha="left" if dx == 0 else "center")
    ax.text(0.0, 6.25, "mer_live/  top level: cli.py (mer-live: parse, run)  analyze.py (mer-analyze)\n"
            "assemble.py (builds the app from a Config)  config.py  registry.py (outputs and analysers "
            "register themselves)", fontsize=8.5, family="monospace", va="top")
    ax.set_xlim(-0.2, 6.6)
    ax.set_ylim(-0.3, 6.4)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "architecture.png")
