"""Durable asynchronous jobs: scoring records or files, and training, on Huey workers.

Rules for this package: the job record in the metadata database is the truth about a job;
queue messages carry only its id. Inputs and results are files under ``<home>/jobs``,
written atomically. Nothing here imports a web framework.
"""

from tabops.jobs.records import Job, JobStore
from tabops.jobs.service import JobService

__all__ = ["Job", "JobService", "JobStore"]
