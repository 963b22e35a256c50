"""``python -m mer_live`` runs ``mer-live`` (handy where console scripts are not on PATH)."""

from mer_live.cli import main

raise SystemExit(main())
