"""The WSGI entry point for gunicorn: the app built from ``DECIDE_*`` environment variables."""

from decide.api import create_app
from decide.config import Settings

app = create_app(Settings.from_env())
