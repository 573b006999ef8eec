"""Redis key names live in `avtomatika/storage/keys.py`; the Lua scripts are files that use its prelude."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from avtomatika.storage import keys, scripts


def test_every_script_is_a_file_and_builds_no_key_by_hand():
    folder = files("avtomatika.storage") / "lua"
    on_disk = sorted(p.name.removesuffix(".lua") for p in folder.iterdir() if p.name.endswith(".lua"))
    assert on_disk == sorted(scripts.NAMES)
    for name in scripts.NAMES:
        body = (folder / f"{name}.lua").read_text()
        assert not re.search(r"\.\. ':", body), f"{name}.lua builds a key name itself; use K.<name>(p, ...)"
        for used in set(re.findall(r"\bK\.([a-z_]+)\(", body)):
            assert used in keys.SINGLE or used in keys.PER_ID, f"{name}.lua uses an undefined key K.{used}"
        assert scripts.source(name).startswith(keys.lua_prelude())


def test_python_and_lua_name_keys_alike():
    named = keys.Keys("pfx")
    prelude = keys.lua_prelude()
    assert named("job", "42") == "pfx:job:{42}" and "p .. ':job:{' .. id .. '}'" in prelude
    assert (
        named("lease", "t1") == "pfx:lease:t1"
        and "K.lease = function(p, id) return p .. ':lease:' .. id end" in prelude
    )
    assert named("watch") == "pfx:watch" and "K.watch = function(p) return p .. ':watch' end" in prelude
    with pytest.raises(KeyError):
        named("nonsense")
