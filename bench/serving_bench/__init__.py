"""The parts of the serving benchmark (``bench/serve.py``, which says how to run it).

- ``base``: the server names, the ``Server`` interface every adapter keeps, ``Variant`` and
  ``Target``, and small process helpers (waiting, signals);
- ``models``: the models on disk, their request bodies and in-process answers;
- ``servers_aip``, ``servers_ray``, ``servers_bentoml``: one adapter per server;
- ``load``: the load generator and the answer check;
- ``report``: the median over rounds, the targets, the table.

``python bench/serve.py`` puts ``bench/`` on ``sys.path``, so these import as
``serving_bench.*``, and the bench's other scripts (``control_plane``, ``replica_overhead``)
as top-level modules.
"""
