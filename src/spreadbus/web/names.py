"""Pairs and symbols as they appear in URLs, checked: a bad one is a 422, never a key.

:data:`PairName` and :data:`SymbolName` are dependencies; declared before the Redis client in
a handler's signature, they reject bad input before Redis is even asked for.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi import Path as PathParam

from spreadbus.config import SYMBOL_RE, parse_pair

# What the OpenAPI document promises (any case is accepted, as the checks upper-case first)
SYMBOL_PATTERN = "^[A-Za-z0-9]{2,20}$"
# two symbols, and not the same one twice (a lookahead with a back-reference)
PAIR_PATTERN = r"^(?!([A-Za-z0-9]{2,20})[-/]\1$)[A-Za-z0-9]{2,20}[-/][A-Za-z0-9]{2,20}$"
BODY_PAIR_PATTERN = r"^(?!([A-Za-z0-9]{2,20})/\1$)[A-Za-z0-9]{2,20}/[A-Za-z0-9]{2,20}$"  # Y/X


def pair_from_path(text: str) -> str:
    """``ETHUSDT-BTCUSDT`` or ``ETHUSDT/BTCUSDT`` (any case) -> ``ETHUSDT/BTCUSDT``."""
    try:
        return "/".join(parse_pair(text.replace("-", "/")))
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None


def symbol_from_path(text: str) -> str:
    """``btcusdt`` -> ``BTCUSDT``; 422 unless it is an exchange symbol."""
    symbol = text.strip().upper()
    if not SYMBOL_RE.match(symbol):
        raise HTTPException(422, detail=f"malformed symbol {text!r}, expected e.g. BTCUSDT")
    return symbol


def _pair(
    pair: Annotated[
        str,
        PathParam(
            description="Y-X or Y/X, e.g. ETHUSDT-BTCUSDT (two different symbols)",
            json_schema_extra={"pattern": PAIR_PATTERN},  # documented; checked by parse_pair
        ),
    ],
) -> str:
    return pair_from_path(pair)


def _symbol(
    symbol: Annotated[
        str,
        PathParam(
            description="exchange symbol, e.g. BTCUSDT",
            json_schema_extra={"pattern": SYMBOL_PATTERN},  # documented; checked below
        ),
    ],
) -> str:
    return symbol_from_path(symbol)


PairName = Annotated[str, Depends(_pair)]
SymbolName = Annotated[str, Depends(_symbol)]
