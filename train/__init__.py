"""mer_train: data, training, evaluation and ONNX export for mer-live's emotion models.

Installed as ``mer_train`` (the repo's ``train/`` folder); modules use relative imports so it also
works as ``train`` from the repository root. Needs the ``[train]`` extra (torch, nnAudio, ...);
the runtime package ``mer_live`` never imports this.
"""
