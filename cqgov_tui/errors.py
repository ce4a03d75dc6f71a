"""User-facing errors: each carries one clear line; the CLI prints it and exits with its code.

``EXIT_CODES`` is the one mapping from exit status to meaning (the README's table is this table).
``REFUSAL_CODES`` names the stable code a server puts beside a refused command's reason
(``rejected: [{id, reason, code}]``): clients translate the code, the reason stays for people and logs.
"""

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ILLEGAL = 3
EXIT_DENIED = 4
EXIT_STORE = 5
EXIT_REMOTE = 6
EXIT_CANNOT_START = 7
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "the command ran and a check it reports on failed (drill, demo summary, audit verify)",
    EXIT_BAD_INPUT: "bad input: a usage mistake, an unknown code, name or value, an unreadable file or duration, "
                    "a point outside Chongqing, a malformed config file",
    EXIT_ILLEGAL: "an illegal transition for the event's state",
    EXIT_DENIED: "permission denied (role, scope or token)",
    EXIT_STORE: "the store is missing, in use by another process, corrupt or unwritable",
    EXIT_REMOTE: "a server could not be reached, failed, or did not answer as a cqgov server",
    EXIT_CANNOT_START: "a server could not start (its port is in use; a demo tier server failed)",
    EXIT_INTERNAL: "an internal error (a bug: `cqgov -v …` shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGTERM or a closed terminal); nothing is left half-made",
}


# A refusal's stable code → what it means (clients translate these; new codes are only ever added).
REFUSAL_CODES = {
    "bad_input": "the command or a value in it is malformed or out of range",
    "unknown_code": "an unknown jurisdiction, category, department or other code",
    "illegal_transition": "the action is not allowed in the event's (or receipt's) current state",
    "note_required": "the action needs a note or reason",
    "permission_denied": "the caller's role or tier may not do this",
    "not_in_jurisdiction": "no such event, directive or place in the caller's jurisdiction",
    "owned_elsewhere": "another tier owns the event: it acts on it, an upper tier supervises",
    "rate_limited": "too many refused requests from this caller; retry after the minute",
    "store_unavailable": "the server's store could not apply the command now",
    "internal_error": "the server failed on this command (a bug; see its log)",
    "unreachable": "a server could not be reached or did not answer as a cqgov server",
    "refused": "refused for another reason (see the reason)",
}


class CqgovError(Exception):
    """Base for errors shown to users as one line (never a traceback). ``code`` is the stable refusal code
    (``REFUSAL_CODES``); a raise site may give a narrower one: ``PermissionDenied(msg, code="owned_elsewhere")``."""

    exit_code = EXIT_CHECK_FAILED
    code = "refused"

    def __init__(self, *args: object, code: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code


class BadInput(CqgovError):
    exit_code = EXIT_BAD_INPUT
    code = "bad_input"


class UnknownCode(BadInput):
    code = "unknown_code"


class IllegalTransition(CqgovError):
    exit_code = EXIT_ILLEGAL
    code = "illegal_transition"


class PermissionDenied(CqgovError):
    exit_code = EXIT_DENIED
    code = "permission_denied"


class StoreError(CqgovError):
    exit_code = EXIT_STORE
    code = "store_unavailable"


class StoreLocked(StoreError):
    pass


class StoreMissing(StoreError):
    pass


class StoreCorrupt(StoreError):
    pass


class Unreachable(CqgovError):
    """A server could not be reached or did not answer as a cqgov server."""

    exit_code = EXIT_REMOTE
    code = "unreachable"


class CannotStart(CqgovError):
    """A server could not start (port in use, a child server died during start-up)."""

    exit_code = EXIT_CANNOT_START


def refusal_code(exc: BaseException) -> str:
    """The stable code of a refusal: the error's own, ``internal_error`` for anything not ours."""
    if isinstance(exc, CqgovError):
        code = getattr(exc, "code", "refused")
        return code if isinstance(code, str) and code else "refused"
    return "internal_error"
