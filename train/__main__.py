"""``python -m mer_train`` (or ``python -m train`` from the repository root) runs ``mer-train``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
