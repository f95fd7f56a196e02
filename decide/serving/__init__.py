"""Model serving: a registry of models, batched backend processes, and the API's client for them.

A registered model runs in backend processes of its own (``backend``), started
and restarted by a supervisor (``supervisor``), reached by API workers over
local Unix sockets (``client``). Nothing here is imported by the backends
except ``spec``, ``protocol``, ``batching``, ``loading`` and ``backend``, so a
backend starts without Flask or SQLAlchemy.
"""
