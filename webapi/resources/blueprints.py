"""Blueprint routes: the state graph as DOT (or SVG when the graphviz binary exists)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from flask import Response
from flask.views import MethodView

from ..errors import abort_json
from ..schemas import GraphQuery
from ..smorest import Blueprint
from .jobs import engine

blp = Blueprint("blueprints", __name__, description="Registered blueprints")


@blp.route("/blueprints/<name>/graph")
class Graph(MethodView):
    @blp.arguments(GraphQuery, location="query")
    @blp.response(200, content_type="text/vnd.graphviz", description="DOT text (SVG with ?format=svg)")
    @blp.errors(400, 401, 404, 429, 501)
    def get(self, query: dict[str, Any], name: str) -> Any:
        """The blueprint's state graph as DOT text; `?format=svg` renders it with graphviz (501 without it)."""
        blueprint = engine().blueprints.get(name)
        if blueprint is None:
            abort_json(404, "blueprint not found", {"name": name[:100]})
        dot = blueprint.render_graph()
        if query["format"] == "dot":
            return Response(dot, mimetype="text/vnd.graphviz")
        binary = shutil.which("dot")
        if binary is None:
            abort_json(501, "SVG rendering needs the graphviz binary 'dot', which is not installed")
        svg = subprocess.run([binary, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=20, check=True)
        return Response(svg.stdout, mimetype="image/svg+xml")
