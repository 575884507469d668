"""Typed specs (Pydantic v2) for what users submit: resources, jobs and queues."""

from aip.spec.job import JobSpec, ReplicaGroup
from aip.spec.loading import load_yaml, validate
from aip.spec.queue import Quota, QueueSpec
from aip.spec.resources import Resources

__all__ = ["JobSpec", "Quota", "QueueSpec", "ReplicaGroup", "Resources", "load_yaml", "validate"]
