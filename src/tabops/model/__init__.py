"""What a registered model version is, once loaded: the runtime half of a model.

Encoder, calibration, the ONNX graphs and the compiled scorer, the typed request decoder,
the version's files and its manifest, and the ``Predictor`` that holds them together.
Training builds these; serving, scoring and jobs use them. Nothing here reads settings,
opens a database or knows about HTTP.
"""
