"""WSGI entry point for a production server: `gunicorn search.service.wsgi:app`."""

from search.service.app import create_app

app = create_app()
