"""Client authentication (`X-Avtomatika-Token`) for every `/api/*` route."""

from __future__ import annotations

from flask import current_app, g, request

from avtomatika.security import Client, ClientRegistry

from .errors import forbidden, unauthorized
from .ratelimit import rate_limits

CLIENT_HEADER = "X-Avtomatika-Token"


def registry() -> ClientRegistry:
    """The client registry of the running app."""
    found: ClientRegistry = current_app.extensions["avtomatika.clients"]
    return found


def authenticate_client() -> None:
    """`before_request`: resolve the client of `/api/*` requests or answer 401."""
    if not request.path.startswith("/api/"):
        return
    token = request.headers.get(CLIENT_HEADER)
    if not token:
        unauthorized(f"missing {CLIENT_HEADER} header")
    client = registry().authenticate(token)
    if client is None:
        unauthorized("invalid client token")
    g.client = client
    rate_limits().hit("client", client.client_id, client.rate_limit)


def current_client() -> Client:
    """The authenticated client of this request."""
    client: Client = g.client
    return client


def require_admin() -> Client:
    """The current client if it is an admin, else 403."""
    client = current_client()
    if not client.is_admin:
        forbidden("this route needs an admin client")
    return client
