"""``python -m train.presence`` (also ``mer-train ship presence`` / ``mer-train cv presence``)."""

from .run import main

raise SystemExit(main())
