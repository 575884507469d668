"""Typed specs (Pydantic v2) for what users submit: resources, jobs and queues."""

from aip.spec.job import FRAMEWORKS, EnvironmentSpec, JobSpec, ReplicaGroup
from aip.spec.loading import load_yaml, validate
from aip.spec.queue import QueueSpec, Quota
from aip.spec.resources import Resources

__all__ = ["FRAMEWORKS", "EnvironmentSpec", "JobSpec", "QueueSpec", "Quota", "ReplicaGroup",
           "Resources", "load_yaml", "validate"]
