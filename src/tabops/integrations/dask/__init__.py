"""Scoring a file on a Dask cluster: ``dask.dataframe`` partitions, one output file in input order.

The driver splits the input into partitions (CSV: runs of lines, found by counting line
breaks; Parquet: runs of row groups) and checks the feature columns before any work starts.
The partitions become a ``dask.dataframe`` (``from_map``) scored by ``map_partitions``; the
version's files are sent to the cluster once, so the model needs no shared filesystem, and
each worker process rebuilds and verifies the predictor once and caches it. A partition is
scored with ``tabops.scoring.local.score_chunk`` and encoded (CSV text, or a whole Parquet file) by
the worker that read it; the same worker then writes the bytes into the output's temp file,
at the offset where the previous partition ended (a chain of small tasks), so rows never
cross the network and the driver copies nothing. Parquet parts are joined by copying their
row groups and writing one footer (``parquet_join``). The temp file is renamed into place
at the end. Invalid rows and the side file of problems (numbered across the whole input)
are those of ``tabops.scoring.local.score_file``.

The workers read the input and write the output, so on a remote cluster both must be at
paths every worker and the driver see (a shared mount). CSV is split at line breaks, so a
quoted field may not hold one.
"""

from tabops.integrations.dask.engine import (
    PartitionProgress,
    score_file_dask,
    start_local_cluster,
)

__all__ = ["PartitionProgress", "score_file_dask", "start_local_cluster"]
