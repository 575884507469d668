"""What an endpoint replica runs: fetch the model version into the node's cache (straight from
object storage, verified by sha256), then become the replica server on the port AIP reserved.

    python -m aip.serving.launch --version FILE --store-url s3://bucket/aip \\
        --cache-dir ~/.aip/models -- --name iris --max-batch-size 32 --max-wait-ms 5

``--version`` is the registry's JSON of the version (``files``, ``sha256``,
``storage_prefix``); the port comes from ``AIP_PORT``. The arguments after ``--`` go to
``python -m aip.serving.replica``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    ours, rest = (args[:args.index("--")], args[args.index("--") + 1:]) if "--" in args else (
        args, [])
    parser = argparse.ArgumentParser(prog="python -m aip.serving.launch")
    parser.add_argument("--version", required=True, help="the version's JSON, or @FILE")
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--store-options", default="{}", help="JSON options of the store")
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    options = parser.parse_args(ours)
    from aip.errors import AIPError
    from aip.registry.cache import fetch
    from aip.storage import ArtifactStore

    text = options.version
    version = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    started = time.perf_counter()
    store = ArtifactStore(options.store_url, options=json.loads(options.store_options))
    try:
        model_dir = fetch(version, options.cache_dir, store=store)
    except AIPError as exc:
        print(f"aip: cannot fetch {version.get('uri')}: {exc}", file=sys.stderr, flush=True)
        return 3
    print(f"aip: model {version.get('uri')} ready in {model_dir} "
          f"({time.perf_counter() - started:.2f}s)", flush=True)
    port = os.environ.get("AIP_PORT")
    if not port:
        print("aip: AIP_PORT is not set: run this as an AIP endpoint replica", file=sys.stderr)
        return 2
    argv_replica = [sys.executable, "-m", "aip.serving.replica", "--model-dir", str(model_dir),
                    "--port", port, "--host", options.host, *rest]
    os.execv(sys.executable, argv_replica)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
