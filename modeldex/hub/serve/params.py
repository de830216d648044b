"""Query parameters read the way CivitAI's zod schemas read them, with CivitAI's error answers.

CivitAI ignores unknown parameters and answers an invalid one with `400 {"error": <ZodError>}`, the error being
`{"issues": [{"code", "message", "path"}], "name": "ZodError"}`. `Params` collects every problem of a request
and `check()` raises one `ApiError` holding them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.datastructures import QueryParams

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class ApiError(Exception):
    """An answer in CivitAI's error shape: `status` and the JSON `body` (always with an `error` key)."""

    def __init__(self, status: int, error: object, **extra: object) -> None:
        super().__init__(str(error))
        self.status = status
        self.body: dict[str, Any] = {"error": error, **extra}


def not_found(message: str) -> ApiError:
    """404 with CivitAI's message (`Model not found`, `No model with id 3`...)."""
    return ApiError(404, message)


class Params:
    """Typed access to a request's query string; problems are collected until `check()`."""

    def __init__(self, query: QueryParams | Mapping[str, str]) -> None:
        self._query = query if isinstance(query, QueryParams) else QueryParams(dict(query))
        self.issues: list[dict[str, Any]] = []

    def has(self, name: str) -> bool:
        """True when the parameter is in the query string at all (even empty)."""
        return name in self._query

    def string(self, name: str) -> str | None:
        """The last value given, stripped; None when absent or blank."""
        values = self._query.getlist(name)
        if not values:
            return None
        value = values[-1].strip()
        return value or None

    def integer(
        self, name: str, *, default: int | None = None, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        """A whole number within bounds; `default` when absent."""
        text = self.string(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if not number.is_integer():
                self._issue(name, "invalid_type", f"Expected number, received {text!r}")
                return default
            value = int(number)
        if minimum is not None and value < minimum:
            self._issue(name, "too_small", f"Number must be greater than or equal to {minimum}")
            return default
        if maximum is not None and value > maximum:
            self._issue(name, "too_big", f"Number must be less than or equal to {maximum}")
            return default
        return value

    def boolean(self, name: str, *, default: bool | None = None) -> bool | None:
        """`true`/`false` (or 1/0), case-insensitive; `default` when absent."""
        text = self.string(name)
        if text is None:
            return default
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._issue(name, "invalid_type", f"Expected boolean, received {text!r}")
        return default

    def choice(self, name: str, allowed: Iterable[str], *, default: str | None = None) -> str | None:
        """One of `allowed` (exact spelling, as zod enums are); `default` when absent."""
        text = self.string(name)
        if text is None:
            return default
        options = list(allowed)
        if text not in options:
            self._enum_issue(name, text, options)
            return default
        return text

    def strings(self, name: str) -> list[str]:
        """Every value of a parameter given repeated or comma-separated (`types=LORA&types=VAE`, `types=LORA,VAE`)."""
        values: list[str] = []
        for raw in self._query.getlist(name):
            values.extend(part.strip() for part in raw.split(",") if part.strip())
        return values

    def choices(self, name: str, allowed: Iterable[str]) -> list[str]:
        """Like `strings`, every value one of `allowed`."""
        options = list(allowed)
        values = self.strings(name)
        for value in values:
            if value not in options:
                self._enum_issue(name, value, options)
        return [v for v in values if v in options]

    def integers(self, name: str) -> list[int]:
        """Comma-separated or repeated whole numbers (`ids=1,2,3`)."""
        numbers: list[int] = []
        for value in self.strings(name):
            if value.isdigit():
                numbers.append(int(value))
            else:
                self._issue(name, "invalid_type", f"Expected number, received {value!r}")
        return numbers

    def check(self) -> None:
        """Raise the collected problems as CivitAI's 400 answer."""
        if self.issues:
            raise ApiError(400, {"issues": self.issues, "name": "ZodError"})

    def _enum_issue(self, name: str, value: str, options: list[str]) -> None:
        shown = " | ".join(f"'{o}'" for o in options)
        self._issue(name, "invalid_enum_value", f"Invalid enum value. Expected {shown}, received '{value}'")

    def _issue(self, name: str, code: str, message: str) -> None:
        self.issues.append({"code": code, "message": message, "path": [name]})
