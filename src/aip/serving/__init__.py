"""Model serving: the data plane of one replica and the control pieces around it.

- ``runtimes``: one ``ServingRuntime`` per model flavor (onnx, pytorch, sklearn, xgboost,
  lightgbm, tensorflow, python); ``runtime_for(flavor)`` picks it, and each imports its
  framework only when a model of that flavor loads.
- ``replica``: the HTTP server of one replica (``python -m aip.serving.replica``), speaking the
  Open Inference Protocol v2 and the ``{"instances": [...]}`` form; ``protocol`` encodes and
  decodes both, ``validation`` checks inputs against the model's signature, ``batching``
  groups concurrent requests into one ``predict``, ``worker`` is the inference thread,
  ``metrics`` exports Prometheus metrics, ``errors`` are the 4xx/5xx answers;
  ``replica_process`` runs a replica as a child process (tests, benchmarks).
- ``launch``, ``router``, ``autoscaler``, ``plan``: starting a replica from the registry, the
  gateway in front of the replicas and the pure policies that decide how many there are.

Importing this package is cheap: nothing here imports numpy or a framework at package level.
"""
