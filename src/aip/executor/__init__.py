"""Executors run replicas: ``base`` defines the plug-in point, ``local`` runs processes on
this host, ``environment`` computes what a replica sees."""

from aip.executor.base import Executor, LaunchRequest, ReplicaHandle, ReplicaStatus

__all__ = ["Executor", "LaunchRequest", "ReplicaHandle", "ReplicaStatus"]
