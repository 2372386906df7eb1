"""Which failed Twilio sends are worth retrying.

Twilio throttling the account and Twilio's own outages pass: the send is retried with backoff.
A refusal of the message itself (outside the window, a bad recipient, bad variables) would be
refused again, so the message ends as failed with Twilio's code.
"""

from http import HTTPStatus

# Twilio's throttling: "Too Many Requests" and WhatsApp's per-sender rate limit.
RETRYABLE_CODES = frozenset({20429, 63018})

# Refusals that hold whatever HTTP status carries them.
PERMANENT_CODES = frozenset(
    {
        63016,  # free-form message outside the customer service window
        21211,  # invalid 'To' number
        63024,  # invalid message recipient
        63003,  # the channel could not find the 'To' address
        21656,  # invalid ContentVariables
        63049,  # Meta chose not to deliver this marketing message
        63032,  # WhatsApp limitation on this user
    }
)


def is_retryable(*, status: int | None, code: int | None) -> bool:
    """Whether a send that failed with this HTTP ``status`` and Twilio error ``code`` may succeed
    when tried again. ``status`` None: Twilio never answered (a timeout, a lost connection).

    A known code decides first; otherwise throttling (429) and server errors (5xx) are
    retryable, and every other answer (4xx) is a refusal.
    """
    if code in RETRYABLE_CODES:
        return True
    if code in PERMANENT_CODES:
        return False
    if status is None:
        return True
    return status == HTTPStatus.TOO_MANY_REQUESTS or 500 <= status <= 599


class TwilioCallError(Exception):
    """Twilio refused a call or did not answer it.

    ``message`` is Twilio's and may quote a phone number: store it, never log it; the error's
    ``str()`` holds no number and is safe to log. ``maybe_sent``: Twilio may have created the
    message all the same (no answer, or a server error), so reconcile with ``messages_to``
    before sending it again.
    """

    def __init__(
        self,
        *,
        retryable: bool,
        maybe_sent: bool,
        status: int | None,
        code: int | None,
        message: str,
    ) -> None:
        answer = "no answer" if status is None else f"HTTP {status}"
        outcome = "retryable" if retryable else "not retryable"
        super().__init__(f"Twilio call failed ({answer}, code {code}): {outcome}")
        self.retryable = retryable
        self.maybe_sent = maybe_sent
        self.status = status
        self.code = code
        self.message = message
