"""The live core, in the order audio flows: ring buffer -> stream (clean-up, hop clock) ->
estimator (model, gate, smoothing) -> estimate -> sinks; ``pipeline`` runs it on its own thread
and ``app`` owns the parts and stops them in order."""
