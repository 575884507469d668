"""The control plane: job and queue services, the reconcile loop, launching replicas."""
