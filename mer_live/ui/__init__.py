"""The Qt dashboard window (``dashboard``)."""
