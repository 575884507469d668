"""Artifact storage: models and job outputs in a local directory or S3-compatible object
storage, behind one interface, so any node can serve any model.

    from aip.storage import ArtifactStore
    store = ArtifactStore("s3://ml/aip", options={"endpoint_url": "http://minio:9000"})
    store.put_dir(Path("model/"), "models/iris/3")

``platform.artifacts`` is the store of the running control plane (config ``storage:``).
fsspec and s3fs are imported when a store is built, not when this package is imported.
"""

from aip.storage.config import StorageConfig
from aip.storage.errors import ArtifactCorrupted, StorageError
from aip.storage.keys import check_key, check_prefix
from aip.storage.store import ArtifactInfo, ArtifactStore, store_from_config
from aip.storage.transfer import Progress

__all__ = [
    "ArtifactCorrupted",
    "ArtifactInfo",
    "ArtifactStore",
    "Progress",
    "StorageConfig",
    "StorageError",
    "check_key",
    "check_prefix",
    "store_from_config",
]
