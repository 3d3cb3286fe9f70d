"""One check of a path's model version for both doors (a hot route and its FastAPI twin): a plain decimal
integer from 1 to :data:`service.bundle.MAX_VERSION`, so ``1.0``, ``+1`` or `` 1`` are refused alike, with
pydantic's own messages (the FastAPI door's error handler and the hot route answer the same bytes).
Model names are checked by :func:`service.bundle.is_valid_name` everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from service.bundle import MAX_VERSION
from service.errors import InvalidRequest
from service.rollout.state import is_alias

NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"
TOO_SMALL = "Input should be greater than or equal to 1"
TOO_LARGE = f"Input should be less than or equal to {MAX_VERSION}"


def _is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _decimal_only(value: object) -> object:
    if isinstance(value, str) and not _is_decimal(value):
        raise PydanticCustomError("int_parsing", NOT_AN_INTEGER)
    return value


# A FastAPI path parameter: ``version: PathVersion`` (the validator after ``Path``: the other way round,
# the OpenAPI document would say ``ge``/``le`` instead of ``minimum``/``maximum``).
PathVersion = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="Model version."), BeforeValidator(_decimal_only)
]


def path_version(text: str) -> int:
    """A hot route's ``{version}`` path parameter, checked as :data:`PathVersion` checks it."""
    if not _is_decimal(text):
        raise InvalidRequest(f"path.version: {NOT_AN_INTEGER}")
    version = int(text)
    if version < 1:
        raise InvalidRequest(f"path.version: {TOO_SMALL}")
    if version > MAX_VERSION:
        raise InvalidRequest(f"path.version: {TOO_LARGE}")
    return version


def path_version_or_alias(text: str) -> int | str:
    """An inference path's ``{version}``: a version as :func:`path_version` checks it, or an alias of the
    model's rollout (a name that begins with a letter)."""
    return text if is_alias(text) else path_version(text)
