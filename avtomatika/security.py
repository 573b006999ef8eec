"""Client identities and tokens: loaded and validated at start, stored only as hashes, compared in constant time."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .config import DEFAULT_CLIENT_TOKEN, DEFAULT_WORKER_TOKEN, Config
from .context import ClientConfig
from .errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "default"
_CLIENT_KEYS = {"token", "plan", "monthly_attempts", "role", "rate_limit"}


def hash_token(token: str) -> str:
    """The stored form of a token (SHA-256 hex; tokens are long random secrets, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Client:
    """An API client: its id, the hash of its token, plan, quota, role and extra parameters."""

    client_id: str
    token_hash: str
    plan: str = "default"
    monthly_attempts: int | None = None
    is_admin: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    rate_limit: str | None = None

    def public(self) -> ClientConfig:
        """What handlers see of the client (never the token hash)."""
        return ClientConfig(self.client_id, self.plan, dict(self.params), self.is_admin)


def _load_toml(path: str, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path}: not found", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} file {path}: malformed TOML: {exc}", path=path) from None
    except UnicodeDecodeError as exc:  # tomllib decodes as UTF-8 and lets this through
        message = f"{what} file {path}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
        raise ConfigError(message, path=path) from None


def _rate_limit(value: Any, where: str, path: str, table: str) -> str | None:
    """A rate limit string such as "100/second" or "10 per minute", checked when the file is read."""
    if value is None:
        return None
    try:
        import limits

        limits.parse(value)
    except (ImportError, ValueError, TypeError):
        raise ConfigError(
            f"{where}, field 'rate_limit': expected e.g. '100/second' or '1000 per minute'", path=path, table=table
        ) from None
    return str(value)


def _required_token(table: Any, where: str, path: str, name: str) -> str:
    """The `token` of a client or worker table, or a `ConfigError` naming file, table and field."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with a token", path=path, table=name)
    token = table.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigError(f"{where}, field 'token': required, a non-empty string", path=path, table=name)
    return token


def load_clients(path: str) -> list[Client]:
    """Read `clients.toml`; any error names the file, the table and the field."""
    data = _load_toml(path, "clients")
    clients = []
    for name, table in data.items():
        where = f"clients file {path}, table [{name}]"
        token = _required_token(table, where, path, name)
        plan = table.get("plan", "default")
        if not isinstance(plan, str):
            raise ConfigError(f"{where}, field 'plan': must be a string", path=path, table=name)
        attempts = table.get("monthly_attempts")
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0):
            raise ConfigError(
                f"{where}, field 'monthly_attempts': must be a non-negative integer", path=path, table=name
            )
        role = table.get("role", "client")
        if role not in ("client", "admin"):
            raise ConfigError(f"{where}, field 'role': must be 'client' or 'admin'", path=path, table=name)
        rate_limit = _rate_limit(table.get("rate_limit"), where, path, name)
        params = {k: v for k, v in table.items() if k not in _CLIENT_KEYS}
        clients.append(Client(name, hash_token(token), plan, attempts, role == "admin", params, rate_limit))
    return clients


def load_worker_tokens(path: str) -> dict[str, str]:
    """Read `workers.toml` (table name = worker id, `token` required) into {worker_id: token hash}."""
    data = _load_toml(path, "workers")
    hashes: dict[str, str] = {}
    for name, table in data.items():
        where = f"workers file {path}, table [{name}]"
        token = _required_token(table, where, path, name)
        hashes[name] = hash_token(token)
    if len(set(hashes.values())) != len(hashes):
        raise ConfigError(f"workers file {path}: two workers share one token", path=path)
    return hashes


def worker_token_matches(token: str | None, individual_hash: str | None, global_token: str) -> bool:
    """Whether `token` authenticates a worker: its own token if it has one, else the global token."""
    if not token:
        return False
    expected = individual_hash if individual_hash is not None else hash_token(global_token)
    return hmac.compare_digest(hash_token(token), expected)


class ClientRegistry:
    """Finds the client of a token; every stored hash is compared, in constant time."""

    def __init__(self, clients: list[Client]) -> None:
        seen: dict[str, str] = {}
        for client in clients:
            if client.token_hash in seen:
                raise ConfigError(f"clients [{seen[client.token_hash]}] and [{client.client_id}] share one token")
            seen[client.token_hash] = client.client_id
        self.clients = clients
        self.by_id = {c.client_id: c for c in clients}

    @classmethod
    def from_config(cls, config: Config) -> ClientRegistry:
        """Clients of `clients.toml` plus the admin client of `CLIENT_TOKEN` (when set).

        When `CLIENT_TOKEN` equals the token of a `clients.toml` table (apps written for 1.0b4 set both),
        that table's client is the one meant, and it becomes an admin.
        """
        clients = load_clients(config.CLIENTS_CONFIG_PATH) if config.CLIENTS_CONFIG_PATH else []
        if clients and config.CLIENT_TOKEN == DEFAULT_CLIENT_TOKEN:
            # A clients file is configured and CLIENT_TOKEN was left at its default: no admin client from it
            # (the default token is public knowledge).
            return cls(clients)
        if config.CLIENT_TOKEN:
            digest = hash_token(config.CLIENT_TOKEN)
            same = [i for i, c in enumerate(clients) if hmac.compare_digest(c.token_hash, digest)]
            if len(same) == 1:
                clients[same[0]] = dataclasses.replace(clients[same[0]], is_admin=True)
            elif not same and not any(c.client_id == DEFAULT_CLIENT_ID for c in clients):
                clients.append(Client(DEFAULT_CLIENT_ID, digest, "default", None, True))
        return cls(clients)

    def authenticate(self, token: str | None) -> Client | None:
        """The client whose token this is, or None."""
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for client in self.clients:
            if hmac.compare_digest(client.token_hash, digest):
                found = client
        return found


# Values of the deploy/ examples (k8s Secret, systemd env file) and the usual "fill me in" words: copied
# unchanged they are as public as the defaults.
PLACEHOLDER_MARKERS = ("replace-with", "replace_with", "change-me", "changeme", "change_me", "your-token")


def is_public_token(token: str, default: str) -> bool:
    """True for the well-known default and for placeholder values from examples."""
    lowered = token.lower()
    return token == default or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def check_production_tokens(config: Config) -> None:
    """Warn about default or placeholder tokens; refuse to start with them when `AVTOMATIKA_ENV=production`."""
    defaults = []
    if is_public_token(config.CLIENT_TOKEN, DEFAULT_CLIENT_TOKEN):
        defaults.append("CLIENT_TOKEN")
    if is_public_token(config.GLOBAL_WORKER_TOKEN, DEFAULT_WORKER_TOKEN):
        defaults.append("GLOBAL_WORKER_TOKEN")
    if not defaults:
        return
    if config.AVTOMATIKA_ENV == "production":
        raise ConfigError(f"AVTOMATIKA_ENV=production refuses default tokens: set {', '.join(defaults)}")
    logger.warning("default token in effect for %s: fine for local use, never for production", ", ".join(defaults))
