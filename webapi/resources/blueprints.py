"""Blueprint routes: the state graph as DOT (or SVG when the graphviz binary exists)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from ..current import service
from ..schemas import GraphQuery
from ..smorest import Blueprint

blp = Blueprint("blueprints", __name__, description="Registered blueprints")


@blp.route("/blueprints/<name>/graph")
class Graph(MethodView):
    @blp.arguments(GraphQuery(), location="query")
    @blp.response(200, content_type="text/vnd.graphviz", description="DOT text (SVG with ?format=svg)")
    @blp.errors(400, 401, 404, 429, 501)
    def get(self, query: dict[str, Any], name: str) -> Any:
        """The blueprint's state graph as DOT text; `?format=svg` renders it with graphviz (501 without it)."""
        content, media_type = service().graph(name, query["format"])
        return Response(content, mimetype=media_type)
