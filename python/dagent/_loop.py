"""The asyncio event loop that runs ``async def`` tools: one per process, in its own daemon thread,
started when the first async tool is registered."""

import asyncio
import threading

_lock = threading.Lock()
_loop = None


def event_loop():
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="dagent-asyncio", daemon=True)
            thread.start()
            _loop = loop
        return _loop
