"""Typed specs (Pydantic v2) for what users submit: resources, jobs and queues."""

from aip.spec.job import JobSpec, ReplicaGroup
from aip.spec.loading import load_yaml, validate
from aip.spec.queue import QueueSpec, Quota
from aip.spec.resources import Resources

__all__ = ["JobSpec", "QueueSpec", "Quota", "ReplicaGroup", "Resources", "load_yaml", "validate"]
