"""The WSGI entry point for gunicorn: the app built from ``DECIDE_*`` environment variables.

What start-up built lives as long as the worker process, so it is frozen out of
the cyclic garbage collector: its full passes would otherwise walk those objects
and stop every request thread for about 75 ms every few thousand requests.
"""

import gc

from decide.api import create_app
from decide.config import Settings

app = create_app(Settings.from_env())
gc.freeze()
