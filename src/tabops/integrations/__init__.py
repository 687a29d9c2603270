"""Scoring on other engines: a Dask cluster (``dask``) and Spark DataFrames (``spark``).

``dask`` is a package: the driver (``engine``), the input's partitions (``partitions``) and
the workers' side (``workers``). ``parquet_join`` lets workers copy Parquet parts into one
file, each at its own offset, without re-encoding; ``shipped`` holds what both engines use
(loading the engine, the predictor a worker rebuilds from a version's files).

Folder rules: each module adapts one optional engine and imports it inside its functions,
never at import time, so ``import tabops.integrations.<engine>`` works without the engine;
calling into it without the engine raises ``MissingExtraError`` naming the pip extra.
Scoring semantics come from ``tabops.scoring`` and ``tabops.model.predictor``, never
re-implemented here, and nothing here imports a web framework or the CLI toolkit.
"""
