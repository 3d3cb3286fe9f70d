"""The machinery under every manifest record: JSON in, a frozen typed record out, and back (stdlib only).

A record is a frozen keyword-only dataclass whose last field, ``extra``, keeps the keys it does not
know; :meth:`Record.to_dict` writes them back unchanged. A field that defaults to ``None`` is written only
when set (absent and null read the same), unless it is named in ``_WRITE_NONE`` (written as null, as older
bundles have it); ``_PARSE`` turns a field's JSON into its type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

MANIFEST_FILE = "manifest.json"

JSON = Any  # a value json.loads can return


class BundleError(Exception):
    """A bundle that cannot be written or must not be served; the message says why."""


def to_json(value: Any) -> JSON:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    return value


class Record:
    """``from_dict`` / ``to_dict`` for a frozen keyword-only dataclass with an ``extra`` field."""

    _WRITE_NONE: ClassVar[frozenset[str]] = frozenset()
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    extra: Mapping[str, JSON]

    @classmethod
    def _known(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls) if field.name != "extra"]  # type: ignore[arg-type]

    @classmethod
    def _omitted_when_none(cls) -> frozenset[str]:
        """The fields that default to None and are not in ``_WRITE_NONE``."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        return frozenset(f.name for f in fields if f.default is None) - cls._WRITE_NONE

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise BundleError(f"{MANIFEST_FILE}: {cls.__name__} must be a JSON object, got {data!r:.60}")
        known = cls._known()
        values = {}
        for name in known:
            if data.get(name) is not None:
                parse = cls._PARSE.get(name)
                values[name] = parse(data[name]) if parse else data[name]
        build: Callable[..., Any] = cls  # a frozen keyword-only dataclass: its fields are keywords
        try:
            return build(**values, extra={key: data[key] for key in data if key not in known})
        except TypeError as error:
            missing = [
                field.name
                for field in dataclasses.fields(cls)  # type: ignore[arg-type]
                if field.name not in values
                and field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ]
            raise BundleError(f"{MANIFEST_FILE}: {cls.__name__} lacks {', '.join(missing)}") from error

    def to_dict(self) -> dict[str, JSON]:
        written: dict[str, JSON] = {}
        omitted = self._omitted_when_none()
        for name in self._known():
            value = getattr(self, name)
            if value is None and name in omitted:
                continue
            written[name] = to_json(value)
        written.update((key, value) for key, value in self.extra.items() if key not in written)
        return written


def floats(value: Any) -> tuple[float, ...]:
    return tuple(float(item) for item in value)
