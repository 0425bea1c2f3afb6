"""Request fields that take JSON numbers only: pydantic's lax mode reads ``false`` as 0 and
``"2.5"`` as 2.5, so a body the document calls invalid would be served as something the user
did not mean. A number written as an integral float (``60.0``) is still an integer, as in JSON
Schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def _json_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_json_number)]
Integer = Annotated[int, BeforeValidator(_json_number)]
