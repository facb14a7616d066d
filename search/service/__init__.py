"""The HTTP service: the Flask app (`app`: search routes, `documents`: writes, `web`: the
page and its static files, `openapi`: the schema, `metrics`), its WSGI entry (`wsgi`)
and gunicorn settings (`gunicorn_conf`)."""
