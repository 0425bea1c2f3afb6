"""The Redis Function libraries the services load, shipped as ``bus/lua/<name>.lua``:
``spreadbus`` (the gateway's tick publishing, :mod:`spreadbus.bus.ticks`) and ``engine`` (the
engine's atomic batch write, :mod:`spreadbus.engine.writer`)."""

from __future__ import annotations

from importlib import resources


def library_code(name: str) -> str:
    """The Lua text of library ``name`` (``FUNCTION LOAD`` takes it as is)."""
    return resources.files("spreadbus.bus").joinpath(f"lua/{name}.lua").read_text()
