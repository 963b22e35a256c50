"""Rewrite the module paths of mer_live from before issue #27's move to the new ones.

For branches written against the flat layout: ``python -m bench.rename_imports [FILE ...]`` (default:
every tracked .py/.md/.toml file, not models/ or results/) rewrites ``mer_live.pipeline`` ->
``mer_live.live.pipeline``, ``mer_live/beat.py`` -> ``mer_live/analysers/beat.py`` and so on, and
prints the files it changed. ``--check`` only lists them (exit 1 when any would change).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: package -> the modules moved into it
MOVED = {
    "sources": ["capture", "filesource", "demo"],
    "live": ["ringbuffer", "arrivals", "realtime", "stream", "estimator", "pipeline", "sinks",
             "smoothing", "stopping", "app"],
    "inference": ["model", "presence", "teacher", "fusion", "roominput"],
    "analysers": ["beat", "beatfollow", "bars", "sections"],
    "outputs": ["osc", "lighting", "record", "terminal", "midi", "link"],
    "ui": ["dashboard"],
    "common": ["levels"],
}
NEW = {m: f"{pkg}.{m}" for pkg, ms in MOVED.items() for m in ms}
NEW["showconfig"] = "common.validate"
NEW["estimate"] = "live.records"  # Estimate and Event: renamed so it is not mistaken for estimator
NEW["live.estimate"] = "live.records"
_NAMES = "|".join(sorted(NEW, key=len, reverse=True))
_DOT = re.compile(rf"\bmer_live\.({_NAMES})(?![A-Za-z0-9_])")
_SLASH = re.compile(rf"\bmer_live/({_NAMES})(?![A-Za-z0-9_])")


def rewrite(text: str) -> str:
    text = _DOT.sub(lambda m: "mer_live." + NEW[m.group(1)], text)
    return _SLASH.sub(lambda m: "mer_live/" + NEW[m.group(1)].replace(".", "/"), text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    if not paths:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
        paths = [str(ROOT / f) for f in tracked if Path(f).suffix in {".py", ".md", ".toml"}
                 and not f.startswith("models/") and "/results/" not in f and f != "bench/rename_imports.py"]
    changed = 0
    for p in map(Path, paths):
        text = p.read_text(encoding="utf-8")
        new = rewrite(text)
        if new != text:
            changed += 1
            print(p)
            if not check:
                p.write_text(new, encoding="utf-8")
    return 1 if check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
