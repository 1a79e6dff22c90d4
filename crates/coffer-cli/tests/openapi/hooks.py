"""Schemathesis hooks for Coffer's document (SCHEMATHESIS_HOOKS, set by the
`service::openapi` test): the AWS front's media type, application/x-amz-json-1.1, is
JSON, so its bodies are written and its answers read (and checked against the
document) as JSON."""

import json

import schemathesis

schemathesis.serializer.alias("application/x-amz-json-1.1", "application/json")


@schemathesis.deserializer("application/x-amz-json-1.1")
def amz_json(ctx, response):
    return json.loads(response.content)
