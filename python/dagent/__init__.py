"""dagent for Python: load a config, register Python tools (plain or ``async def``), run plans and
tasks, watch step events, ingest and search the memory. See README.md "Embedding in Python".

    import dagent
    rt = dagent.Runtime.load("config.yaml", overrides=["limits.max_steps=50"])
    rt.register_tool("shout", "upper-cases a text",
                     {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
                     lambda p: {"text": p["text"].upper()})
    result = rt.run_plan([{"id": 1, "action": "shout", "parameters": {"text": "hi"}}], workspace="ws")
"""

import atexit as _atexit
import weakref as _weakref

from .errors import ConfigError, DagentError, MemoryStoreError, PlanError, ProviderUnreachable
from ._dagent import Runtime, __version__

__all__ = ["Runtime", "DagentError", "ConfigError", "PlanError", "ProviderUnreachable",
           "MemoryStoreError", "__version__"]

# Runtimes still open when the interpreter exits are closed while it still runs threads: closing
# waits for Python tools underway, which need the GIL to finish.
_open = _weakref.WeakSet()
_load = Runtime.load


def _load_tracked(path=None, overrides=()):
    rt = _load(path, list(overrides))
    _open.add(rt)
    return rt


_load_tracked.__doc__ = _load.__doc__
Runtime.load = staticmethod(_load_tracked)


@_atexit.register
def _close_all():
    for rt in list(_open):
        rt.close()
