"""Scoring files: one driver for every engine, the local engine, the output formats.

``driver.ScoringRun`` owns what every engine shares: the output's temp files beside the
destination, the tally of rows, positives and invalid rows, the side file of bad rows (row
numbers kept as integers), and publication by rename. ``local`` reads and scores chunks in
this process; ``tabops.integrations.dask`` scores partitions on a cluster through the same
run. Rows are decided by the serving core, so its hooks see every scored row.
"""
