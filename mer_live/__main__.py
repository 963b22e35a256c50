"""``python -m mer_live`` runs ``mer-live`` (handy where console scripts are not on PATH)."""

from mer_live.cli import main

if __name__ == "__main__":  # importing the package's modules (e.g. to list them) must not run it
    raise SystemExit(main())
