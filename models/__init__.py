"""Shipped ONNX models and their model cards (installed as ``mer_live.models``)."""
