"""The model registry's client-side library: model URIs, flavors and signatures, the
manifest, and the node cache that serving replicas fetch versions into.

    from aip.registry import fetch, parse_model_uri
    ref = parse_model_uri("models:/fraud@production")
    path = fetch(ref, cache_dir, client=client)        # a verified local model directory

The server side (versions, aliases, lineage) is ``aip.control.registry``; the REST routes are
``aip.server.routes.models``. Heavy libraries (onnx, torch, sklearn ...) are imported only by
the signature reader of their flavor.
"""

from aip.registry.cache import fetch
from aip.registry.uris import ModelRef, parse_model_uri

__all__ = ["ModelRef", "fetch", "parse_model_uri"]
