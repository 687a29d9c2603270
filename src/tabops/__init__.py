"""tabops: from a tabular dataset to a versioned, served and monitored binary classifier.

Layers, top to bottom (imports only go down): ``server`` and ``cli`` translate transport;
``training``, ``registry``, ``predictor``, ``batch`` and ``dataset`` are services;
``schema`` and ``validation`` are the pure core; ``config`` and ``errors`` sit at the bottom.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
