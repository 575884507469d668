"""AIP: an open, self-hosted AI platform.

    import aip
    client = aip.Client()            # finds the local server and its token via AIP_HOME
    job = client.submit_job({...})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aip.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":  # lazy: `import aip` stays cheap for the CLI and for jobs
        from aip.client import Client

        return Client
    raise AttributeError(f"module 'aip' has no attribute {name!r}")
