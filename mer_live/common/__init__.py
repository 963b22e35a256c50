"""Rules that the live path, ``mer-analyze`` and training must apply alike, each in one home.

``framing`` (audio -> model windows), ``silence`` (when the input counts as silent), ``fusion``
(the CNN and the teacher blended), ``hashing`` (a model file's fingerprint) and ``logs`` (one-line
messages and throttled warnings). Everything here is plain numpy and the standard library, so
training imports it without pulling in the live machinery.
"""
