"""mer_train: data, training, evaluation and ONNX export for mer-live's emotion models.

Installed as ``mer_train`` (the repo's ``train/`` folder); modules use relative imports so it also
works as ``train`` from the repository root. Needs the ``[train]`` extra (torch, nnAudio, ...);
the runtime package ``mer_live`` never imports this.

``mer-train`` (``cli.py``) is the one entry point: ``ship default|room|presence|...`` builds each
shipped model, ``cv ...`` runs the cross-validations its card cites, ``evaluate``/``fit``/``export``
train on any labelled set. Folders come from ``paths.py``. ``experiments/`` holds research scripts
that import from here, never the reverse (docs/training.md lists the layout).
"""
