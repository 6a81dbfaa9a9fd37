"""Typed errors. Every error a person can see carries a one-line ``user_message``.

Adapters convert SDK exceptions into these where they are raised (STYLE.md §7); nothing
above ``core.providers`` ever sees an SDK exception type. Messages never contain secrets:
SDK error text is not copied in verbatim, only the fields we choose.
"""

from __future__ import annotations


class ParleyError(Exception):
    """Base of every error Parley shows to a person.

    Attributes:
        user_message: One line, plain language, no secrets, safe to show and log.
        retryable: Whether retrying the same request may succeed.
    """

    default_message = "Something went wrong."
    retryable = False

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        self.user_message = (user_message or self.default_message).strip().splitlines()[0]
        self.detail = detail
        super().__init__(self.user_message)


class ConfigError(ParleyError):
    """Bad settings, an unknown provider or model name, a bad argument."""

    default_message = "Parley's configuration is not valid."


class MissingKeyError(ParleyError):
    """No API key for a provider that needs one."""

    default_message = "No API key is set for this provider."


class AuthError(ParleyError):
    """The provider rejected the key (401/403)."""

    default_message = "The API key was rejected. Check it in Settings or with `parley keys set`."


class RateLimited(ParleyError):
    """429 and friends. ``retry_after`` is seconds, when the server said."""

    default_message = "The provider is rate limiting requests."
    retryable = True

    def __init__(
        self,
        user_message: str | None = None,
        *,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        if user_message is None:
            user_message = self.default_message
            if retry_after is not None:
                user_message += f" Try again in {retry_after:.0f} s."
        super().__init__(user_message, detail=detail)


class QuotaExhausted(ParleyError):
    """Billing quota or a spend limit was reached: retrying cannot help."""

    default_message = (
        "The account's quota or spend limit is used up. Check billing with the provider."
    )


class ContextTooLong(ParleyError):
    """The prompt does not fit the model's context window."""

    default_message = "The conversation is too long for this model's context window."


class ProviderDown(ParleyError):
    """Server errors (5xx, 529 overloaded) and connection failures."""

    default_message = "The provider could not be reached."
    retryable = True

    def __init__(
        self,
        user_message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(user_message, detail=detail)


class ProviderTimeout(ParleyError):
    """Connect, first-byte or mid-stream idle timeout."""

    default_message = "The provider took too long to answer."
    retryable = True


class WrongEndpoint(ParleyError):
    """The server answered, but not as a model server.

    An HTML page, a JSON body that is no completion, or a redirect to another server (a wrong
    base URL, a captive portal, a proxy).

    Not retryable: asking the same address again gets the same page.
    """

    default_message = "The server's answer is not a model's: check the base URL."


class Cancelled(ParleyError):
    """The person stopped the turn."""

    default_message = "Stopped."


class ModelNotFound(ParleyError):
    """The provider does not know the model (404), or the catalog does not."""

    default_message = "The model was not found."


class BadRequest(ParleyError):
    """The provider refused the request for another reason (400/422)."""

    default_message = "The provider refused the request."


class StorageError(ParleyError):
    """The database or data folder cannot be used (corrupt, locked, read-only)."""

    default_message = "Parley's data folder cannot be used."


class KeyringUnavailable(ParleyError):
    """No usable OS keyring backend."""

    default_message = (
        "No OS keyring is available to store API keys. Install and unlock one "
        "(GNOME Keyring or KWallet on Linux: `apt install gnome-keyring`), or use a "
        "session-only key."
    )


class IndexBusy(ParleyError):
    """Another process is writing the knowledge index."""

    default_message = "Another Parley process is indexing; try again when it finishes."


class OverBudget(ParleyError):
    """Spending reached a budget the person set, and sending over it was not confirmed."""

    default_message = "Your spending budget is used up; confirm to send anyway."
