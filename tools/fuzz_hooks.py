"""schemathesis hooks for tools/fuzz.py: how a generated feed (the list of lines the
OpenAPI document describes for `POST /documents`) becomes an NDJSON body."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if not isinstance(value, list):  # negative cases: whatever was drawn, as one line
        return (json.dumps(value) + "\n").encode("utf-8", "surrogatepass")
    return "".join(json.dumps(line) + "\n" for line in value).encode("utf-8", "surrogatepass")
