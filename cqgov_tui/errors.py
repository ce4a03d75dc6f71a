"""User-facing errors: each carries one clear line; the CLI prints it and exits with its code.

``EXIT_CODES`` is the one mapping from exit status to meaning (the README's table is this table).
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


class CqgovError(Exception):
    """Base for errors shown to users as one line (never a traceback)."""

    exit_code = EXIT_CHECK_FAILED


class BadInput(CqgovError):
    exit_code = EXIT_BAD_INPUT


class UnknownCode(BadInput):
    pass


class IllegalTransition(CqgovError):
    exit_code = EXIT_ILLEGAL


class PermissionDenied(CqgovError):
    exit_code = EXIT_DENIED


class StoreError(CqgovError):
    exit_code = EXIT_STORE


class StoreLocked(StoreError):
    pass


class StoreMissing(StoreError):
    pass


class StoreCorrupt(StoreError):
    pass


class Unreachable(CqgovError):
    """A server could not be reached or did not answer as a cqgov server."""

    exit_code = EXIT_REMOTE


class CannotStart(CqgovError):
    """A server could not start (port in use, a child server died during start-up)."""

    exit_code = EXIT_CANNOT_START
