"""mer-live: real-time music emotion recognition (arousal, valence in [0, 1]) for the stage.

The runtime needs only numpy and onnxruntime (never torch). Streaming use::

    from mer_live import Model
    model = Model.load()                  # the shipped default model
    av = model.predict(windows)           # float32 [batch, samples] -> [batch, 2]
"""

from mer_live.inference.model import Model, ModelCard, ModelError, default_model_path

__all__ = ["Model", "ModelCard", "ModelError", "default_model_path"]
__version__ = "0.1.0"
