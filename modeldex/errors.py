"""The error hierarchy: every error a user may see carries a message written for them.

The CLI renders `ModeldexError` subclasses as one line on stderr with `exit_code`; anything else is a bug and
is allowed to surface as a traceback.
"""

from __future__ import annotations


class ModeldexError(Exception):
    """Base of every user-facing error."""

    exit_code: int = 1
    title: str = "error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class UsageError(ModeldexError):
    """The command line or an argument was wrong."""

    exit_code = 2
    title = "usage"


class ConfigError(ModeldexError):
    """The config file or an environment variable could not be used."""

    exit_code = 2
    title = "config"


class ReadError(ModeldexError):
    """A model file could not be read: truncated, oversized header, not a model."""

    title = "read"


class UnsafePickleError(ModeldexError):
    """A pickle references globals outside the allow-list; it is never executed."""

    title = "unsafe"

    def __init__(self, message: str, globals_: list[str]) -> None:
        super().__init__(message)
        self.globals = globals_


class DatabaseError(ModeldexError):
    """The database could not be opened or migrated."""

    title = "database"


class SortError(ModeldexError):
    """A sort plan could not be made or applied."""

    title = "sort"


class HubError(ModeldexError):
    """Anything that went wrong talking to CivitAI."""

    title = "civitai"


class NotFoundError(HubError):
    """The model, version or file does not exist."""

    exit_code = 4
    title = "not found"


class AuthRequiredError(HubError):
    """Login, an API key or early access is needed."""

    exit_code = 3
    title = "login required"


class EarlyAccessError(AuthRequiredError):
    """The version is in early access: only supporters (with an API key) may download it before a date."""

    title = "early access"


class RateLimitedError(HubError):
    """CivitAI kept answering 429 after every retry."""

    title = "rate limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChallengeError(HubError):
    """Cloudflare answered with an HTML challenge page instead of the API's JSON."""

    title = "blocked by Cloudflare"


class ServerError(HubError):
    """CivitAI (or Cloudflare in front of it) kept failing with 5xx or 524."""

    title = "server error"


class NetworkError(HubError):
    """The connection failed, timed out or was cut before the answer was complete."""

    title = "network"


class BadResponseError(HubError):
    """The answer was not what the API promises: not JSON, or JSON of the wrong shape."""

    title = "bad response"


class GenerationError(ModeldexError):
    """Parameters or resources for reproduction were unusable."""

    title = "generation"
