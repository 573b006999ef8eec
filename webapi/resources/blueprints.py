"""Blueprint routes: the state graph as DOT (or SVG when the graphviz binary exists)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ..errors import abort_json
from .jobs import engine

blp = Blueprint("blueprints", __name__, description="Registered blueprints")


@blp.route("/api/v1/blueprints/<name>/graph")
class Graph(MethodView):
    @blp.doc(
        parameters=[{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["dot", "svg"]}}],
        responses={"200": {"description": "DOT text", "content": {"text/vnd.graphviz": {}}}},
    )
    def get(self, name: str) -> Any:
        """The blueprint's state graph as DOT text; `?format=svg` renders it with graphviz (501 without it)."""
        blueprint = engine().blueprints.get(name)
        if blueprint is None:
            abort_json(404, "blueprint not found", {"name": name[:100]})
        dot = blueprint.render_graph()
        fmt = request.args.get("format", "dot")
        if fmt == "dot":
            return Response(dot, mimetype="text/vnd.graphviz")
        if fmt != "svg":
            abort_json(400, "format must be dot or svg", {"format": fmt[:20]})
        binary = shutil.which("dot")
        if binary is None:
            abort_json(501, "SVG rendering needs the graphviz binary 'dot', which is not installed")
        svg = subprocess.run([binary, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=20, check=True)
        return Response(svg.stdout, mimetype="image/svg+xml")
