"""WSGI entry point for a production server: `gunicorn search.wsgi:app`."""

from .app import create_app

app = create_app()
