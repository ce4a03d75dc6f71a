"""Shared CLI plumbing: the one way to print, one-line errors with one exit-code mapping, JSON output,
verbosity and progress, and the options every command family shares (store, server, token, language)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import logging
import os
import sys
import traceback
from typing import Any, Callable, Iterator

import click

from .. import config
from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_STORE, CqgovError
from ..textsafe import json_text, plain

# The version of every --json document's shape (its "schema_version" key); raised when a field is renamed
# or removed, not when one is added.
JSON_SCHEMA_VERSION = 1

log = logging.getLogger("cqgov")

# -v/-q of the current invocation (the group's callback sets it; a command run without the group sees 0).
_verbosity = 0


def out(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    """The one way the CLI prints text for people: every control, bidi and invisible character in it is
    made visible (``textsafe.plain``), whichever field it came from. Newlines are kept; a command puts a
    stored field through ``field()`` so that the field's own newlines cannot forge a line."""
    click.echo(plain(str(text), multiline=True), err=err, nl=nl)


def field(value: object) -> str:
    """A stored value for one line of output (its newlines shown as ␊)."""
    return plain("" if value is None else str(value))


def progress(message: str) -> None:
    """A progress line on stderr for long work; -q silences it."""
    if _verbosity >= 0:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            out(message, err=True)


def set_verbosity(level: int) -> None:
    """-q is -1, default 0, -v 1, -vv 2: progress lines, then info logs, then debug logs on stderr."""
    global _verbosity
    _verbosity = level
    root = logging.getLogger("cqgov")
    root.setLevel(logging.DEBUG if level >= 2 else logging.INFO if level == 1 else logging.WARNING)
    if not any(getattr(h, "_cqgov", False) for h in root.handlers):
        handler = _StderrHandler()
        handler._cqgov = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("cqgov: %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


def verbosity() -> int:
    return _verbosity


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (CliRunner swaps it per invocation), made visible."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        with contextlib.suppress(OSError):
            self.stream.write(plain(self.format(record), multiline=True) + "\n")
            self.flush()


def fail(exc: CqgovError) -> None:
    """One line on stderr and the error's exit code."""
    message = " ".join(str(exc).split("\n")).strip() or type(exc).__name__
    with contextlib.suppress(OSError):
        out(f"cqgov: {message}", err=True)
    sys.exit(exc.exit_code)


def handle_errors(fn: Callable) -> Callable:
    """Turn every error into a one-line message and its documented exit code; never a traceback
    (``-v`` shows the traceback of an internal error)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CqgovError as exc:
            fail(exc)
        except KeyboardInterrupt:
            with contextlib.suppress(OSError):
                out("cqgov: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except OSError as exc:
            # a file the user named (unreadable, a directory, a device) or the network below httpx
            from ..errors import BadInput

            where = f"{exc.filename}: " if exc.filename else ""
            fail(BadInput(f"{where}{exc.strerror or exc}"))
        except Exception as exc:
            if _is_store_error(exc):
                # a store that broke after it opened (disk full, truncated file)
                with contextlib.suppress(OSError):
                    out(f"cqgov: store error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                        err=True)
                sys.exit(EXIT_STORE)
            internal_error(exc)

    return wrapper


def internal_error(exc: BaseException) -> None:
    """A bug: one line (the traceback with -v) and exit 70."""
    with contextlib.suppress(OSError):
        if _verbosity >= 1:
            out("".join(traceback.format_exception(exc)).rstrip(), err=True)
        first = str(exc).splitlines()[0] if str(exc) else ""
        out(f"cqgov: internal error: {type(exc).__name__}: {first} (run `cqgov -v …` for the traceback)", err=True)
    sys.exit(EXIT_INTERNAL)


def _is_store_error(exc: BaseException) -> bool:
    """A ``duckdb.Error``, without importing duckdb here: a command that never opened a store cannot
    raise one, and `cqgov tui` opens its store on the launcher's thread while Textual imports (a
    module-level ``import duckdb`` put its ~0.15 s on the main thread before that thread started)."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def log_to(path: str | None, level: str) -> None:
    """A long-running command's log (serve): every logger, uvicorn's included, to ``path`` (appended) or to
    stderr, one timestamped line per record with control characters made visible."""
    from ..errors import BadInput

    try:
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8") if path else _StderrHandler()
    except OSError as exc:
        raise BadInput(f"--log-file {path}: {exc.strerror}") from None
    handler.setFormatter(_SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    cqgov = logging.getLogger("cqgov")
    for h in [h for h in cqgov.handlers if getattr(h, "_cqgov", False)]:
        cqgov.removeHandler(h)  # records reach the root's handler once
    cqgov.setLevel(logging.NOTSET)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at info (an upstream long-poll every 2 s): only at debug.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if level.lower() == "debug" else logging.WARNING)


class _SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return plain(super().format(record), multiline=True)


def check_secret_file(path: str) -> None:
    """A secret file given by the user, if it exists, is a regular file that can be read (not a device such
    as /dev/zero, read for ever, nor /proc/self/mem, which fails with EIO)."""
    from ..errors import BadInput

    if not os.path.exists(path):
        return
    if not os.path.isfile(path):
        raise BadInput(f"{path}: not a regular file (give the server's secret file)")
    try:
        with open(path, "rb") as fh:
            fh.read(4096)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the secret ({exc.strerror})") from None


@contextlib.contextmanager
def fresh_file(path: str | None) -> Iterator[None]:
    """A file this block creates is removed again if the block does not finish (Ctrl-C, SIGTERM, an
    error), so a re-run is never blocked by a half-made store."""
    existed = path is None or os.path.exists(path)
    try:
        yield
    except BaseException:
        if not existed:
            for p in (path, f"{path}.wal"):
                with contextlib.suppress(OSError):
                    os.remove(p)
        raise


# ---- JSON


def emit_json(data: dict | list) -> None:
    """A --json document: an object whose first key is ``schema_version``; every ``…_at`` epoch number has an
    ISO-8601 (China time) sibling ``…_at_iso``; DEL, C1, bidi and invisible characters are \\u-escaped."""
    body = _with_iso(_jsonable(data))
    doc = {"schema_version": JSON_SCHEMA_VERSION, **(body if isinstance(body, dict) else {"items": body})}
    click.echo(json_text(json.dumps(doc, ensure_ascii=False, indent=2, default=_default)))


def iso(epoch: float) -> str | None:
    """ISO-8601 in China time (+08:00); None when the number is no time a datetime can hold."""
    try:
        moment = _dt.datetime.fromtimestamp(epoch, _CST)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds" if float(epoch).is_integer() else "milliseconds")


_CST = _dt.timezone(_dt.timedelta(hours=8))


def _with_iso(obj: Any) -> Any:
    if isinstance(obj, dict):
        result: dict = {}
        for key, value in obj.items():
            result[key] = _with_iso(value)
            if (isinstance(key, str) and key.endswith("_at") and f"{key}_iso" not in obj
                    and (value is None or isinstance(value, (int, float)) and not isinstance(value, bool))):
                result[f"{key}_iso"] = None if value is None else iso(value)
        return result
    if isinstance(obj, (list, tuple)):
        return [_with_iso(v) for v in obj]
    return obj


def _jsonable(obj: Any) -> Any:
    """Dataclasses and enums as plain values, so ISO siblings are added inside them too."""
    import dataclasses
    import enum

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def _default(obj):
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ---- shared options: flag > CQGOV_* environment variable > config file > built-in default


def from_config(key: str, fallback: Any = None) -> Callable[[], Any]:
    def default() -> Any:
        value = config.load().get(key)
        return fallback if value is None else value

    default.__name__ = f"config_{key}"
    return default


def _needed(check: Callable[[str], str] | None = None, required: bool = True) -> Callable:
    """An option callback: click does not enforce ``required`` when a callable default (the config file)
    returns None, so it is enforced here; ``check`` validates a given value."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None or value == "":
            if required:
                raise click.MissingParameter(ctx=ctx, param=param)
            return None
        if check is None:
            return value
        try:
            return check(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}") from None

    return callback


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False), envvar="CQGOV_DB",
                         default=from_config("db"), show_default="$CQGOV_DB or the config file's db",
                         callback=_needed(), help="Path of the DuckDB store.")


def server_option(name: str = "server", required: bool = True) -> Callable:
    return click.option("--server", name, envvar="CQGOV_SERVER", default=from_config("server"),
                        show_default="$CQGOV_SERVER or the config file's server",
                        callback=_needed(config.server_url, required),
                        help="Tier server URL, e.g. http://127.0.0.1:8701.")


def token_option(required: bool = True) -> Callable:
    return click.option("--token", envvar="CQGOV_TOKEN", default=from_config("token"),
                        show_default="$CQGOV_TOKEN or the config file's token", callback=_needed(None, required),
                        help="Access token (from `cqgov token create`).")


def lang_option(fallback: str | None = None) -> Callable:
    return click.option("--lang", type=click.Choice(["zh", "en"]), envvar="CQGOV_LANG",
                        default=from_config("lang", fallback),
                        show_default=f"$CQGOV_LANG, the config file's lang, else {fallback or 'zh'}",
                        help="Console language.")


def catalogue_option(fn: Callable) -> Callable:
    """``--catalogue DIR`` (or ``CQGOV_CATALOGUE``): a district's own catalogue over the shipped one."""
    return click.option("--catalogue", "catalogue_dir", default=None, envvar="CQGOV_CATALOGUE",
                        type=click.Path(file_okay=False),
                        help="A district's own catalogue directory (plans/, categories.yaml, runways.yaml with "
                             "特色子跑道 …) layered over the shipped one; validated at start.")(fn)


def use_catalogue(path: str | None, export: bool = True) -> str | None:
    """Validate a district's own catalogue (``BadInput`` naming file and line) and, with ``export``, make it
    the one this process and the processes it starts load (``serve``, ``tui``; ``init`` only records it).
    Returns its absolute path (None: the shipped catalogue only)."""
    if not path:
        return None
    import os
    from pathlib import Path

    from ..catalogue.cached import ENV, load_catalogue

    resolved = str(Path(path).resolve())
    load_catalogue(overlay=resolved)
    if export:
        os.environ[ENV] = resolved
    return resolved
