"""Which client a token is: clients.toml tables and the `CLIENT_TOKEN` setting (SPEC §5)."""

from __future__ import annotations

import pytest

from avtomatika.config import Config
from avtomatika.errors import ConfigError
from avtomatika.security import ClientRegistry


def registry(tmp_path, toml: str, client_token: str) -> ClientRegistry:
    path = tmp_path / "clients.toml"
    path.write_text(toml)
    config = Config({"CLIENTS_CONFIG_PATH": str(path)})
    config.CLIENT_TOKEN = client_token
    return ClientRegistry.from_config(config)


def test_client_token_equal_to_a_table_token_is_that_client_as_admin(tmp_path):
    found = registry(tmp_path, '[my_client]\ntoken = "t-1"\nplan = "premium"\n[other]\ntoken = "t-2"\n', "t-1")
    me = found.authenticate("t-1")
    assert me is not None and me.client_id == "my_client" and me.is_admin and me.plan == "premium"
    assert [c.client_id for c in found.clients] == ["my_client", "other"]  # no second client for that token
    other = found.authenticate("t-2")
    assert other is not None and not other.is_admin


def test_a_distinct_client_token_is_the_default_admin(tmp_path):
    found = registry(tmp_path, '[my_client]\ntoken = "t-1"\n', "t-admin")
    admin = found.authenticate("t-admin")
    assert admin is not None and admin.client_id == "default" and admin.is_admin
    assert not found.authenticate("t-1").is_admin


def test_two_tables_with_one_token_stop_the_start_naming_both(tmp_path):
    with pytest.raises(ConfigError, match=r"\[a\] and \[b\] share one token"):
        registry(tmp_path, '[a]\ntoken = "same"\n[b]\ntoken = "same"\n', "")
