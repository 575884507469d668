"""Node inventory: what this host has (detected) plus what the config file declares, turned
into the scheduler's ``Node`` list."""

from aip.inventory.config import (
    GpuDeclaration,
    InventoryConfig,
    LocalNodeConfig,
    VirtualNodeConfig,
    build_nodes,
    load_inventory_file,
)
from aip.inventory.detect import HostFacts, detect_host, short_gpu_model

__all__ = [
    "GpuDeclaration",
    "HostFacts",
    "InventoryConfig",
    "LocalNodeConfig",
    "VirtualNodeConfig",
    "build_nodes",
    "detect_host",
    "load_inventory_file",
    "short_gpu_model",
]
