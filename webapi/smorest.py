"""flask-smorest as designed: one parser for every JSON body, and the real error schema in the OpenAPI document.

Request bodies are declared with `@blp.arguments(Schema)` and answers with `@blp.response` /
`@blp.alt_response`, so the document at `/_public/openapi.json` is generated from the marshmallow schemas that
validate the requests and shape the answers. Nothing here patches a private attribute.
"""

from __future__ import annotations

from typing import Any, NoReturn

import flask_smorest
import marshmallow as ma
from webargs import core
from webargs.flaskparser import FlaskParser

from .errors import bad_request
from .payload import json_body


class Error(ma.Schema):
    """Every error answer: `{"error": "<message>", "details": <anything or null>}`."""

    error = ma.fields.String(required=True, metadata={"description": "What went wrong, in one sentence"})
    details = ma.fields.Raw(allow_none=True, metadata={"description": "Field errors or context; may be null"})


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser, strict where safety needs it and liberal about content types.

    - The body is read as JSON whatever its `Content-Type` (the original accepted that too).
    - `NaN`/`Infinity`, malformed JSON and strings with lone surrogates answer 400 (see `payload.json_body`).
    - Validation errors answer 400 `{"error", "details"}`, not webargs' 422.
    """

    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        body = json_body(required=False)
        return core.missing if body is None else body

    def handle_error(  # type: ignore[override]
        self, error: ma.ValidationError, req: Any, schema: ma.Schema, **_: Any
    ) -> NoReturn:
        messages = error.messages
        if isinstance(messages, dict) and set(messages) == {"query"}:
            fields = messages["query"]
            names = ", ".join(sorted(fields)) if isinstance(fields, dict) else ""
            bad_request(f"invalid query parameter: {names}", fields)
        if isinstance(messages, dict) and set(messages) == {"json"}:
            messages = messages["json"]
        bad_request("invalid request body", messages)


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose `@arguments` use `JsonBodyParser`."""

    ARGUMENTS_PARSER = JsonBodyParser()

    def errors(self, *codes: int) -> Any:
        """Document the error answers an operation can give, each with the `Error` schema."""

        def decorate(func: Any) -> Any:
            for code in codes:
                func = self.alt_response(code, schema=Error)(func)
            return func

        return decorate


class Api(flask_smorest.Api):
    """The API with the real error schema (`DEFAULT_ERROR` documents every operation's error answers)."""

    ERROR_SCHEMA = Error
