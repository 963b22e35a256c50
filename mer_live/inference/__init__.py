"""The models the live path and ``mer-analyze`` run through onnxruntime: the emotion CNN
(``model``), the music-presence gate (``presence``), the pretrained teacher and its fusion
(``teacher``, ``fusion``) and the room-input choice (``roominput``). Never torch."""
