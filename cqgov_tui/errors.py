"""User-facing errors: each carries one clear line; the CLI prints it and exits non-zero."""


class CqgovError(Exception):
    """Base for errors shown to users as one line (never a traceback)."""

    exit_code = 1


class BadInput(CqgovError):
    exit_code = 2


class UnknownCode(BadInput):
    pass


class IllegalTransition(CqgovError):
    exit_code = 3


class PermissionDenied(CqgovError):
    exit_code = 4


class StoreError(CqgovError):
    exit_code = 5


class StoreLocked(StoreError):
    pass


class StoreMissing(StoreError):
    pass


class StoreCorrupt(StoreError):
    pass
