"""Research scripts (seed blends, learning curves, feature probes, figures, the waveform and
distillation CVs, the one-time re-export): they import the library from ``train/``; nothing in
``train/`` imports them, and no shipped model needs them (``mer-train ship`` / ``mer-train cv``)."""
