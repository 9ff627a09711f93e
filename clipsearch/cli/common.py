"""What every command shares: the context object, error translation, console output."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import typer

from clipsearch.errors import ClipsearchError, ConfigError
from clipsearch.settings import Settings


@dataclass
class CliContext:
    settings: Settings
    debug: bool = False


def err(message: str) -> None:
    typer.echo(message, err=True)


# Whether this process has said "interrupted" (the CLI's own state: typer turns a Ctrl-C
# outside a command into a silent exit 130, which `run` then reports once).
_interrupt = {"reported": False}


def interrupted(message: str = "interrupted") -> int:
    """Say that Ctrl-C stopped the command; the exit status for it (128 + SIGINT)."""
    err(message)
    _interrupt["reported"] = True
    return 130


def interrupt_reported() -> bool:
    return _interrupt["reported"]


def quiet_libraries(debug: bool) -> None:
    # open_clip logs to the root logger (random init, failed downloads); our own messages
    # say the same thing once, with what to do about it.
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if not debug:
        # Pillow warns about corrupt EXIF blocks and the like; the file is still indexed.
        warnings.filterwarnings("ignore", module="PIL")
    # clipsearch's own library logs (a model export's progress, a fallback to torch) are
    # lines for the user, on stderr.
    ours = logging.getLogger("clipsearch")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
        ours.propagate = False
    ours.setLevel(logging.DEBUG if debug else logging.INFO)


# Packages of the optional extras: a light install (`pip install clipsearch`) lacks them.
_EXTRAS = {"torch": "torch", "torchvision": "torch", "open_clip": "torch", "onnx": "torch", "streamlit": "ui"}


def _message(exc: BaseException) -> str:
    if isinstance(exc, ClipsearchError):
        return str(exc)
    missing = (exc.name or "").split(".")[0] if isinstance(exc, ModuleNotFoundError) else ""
    if missing in _EXTRAS:
        return f"this needs {missing}, which the light install leaves out: pip install 'clipsearch[{_EXTRAS[missing]}]'"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    # sqlalchemy.exc is looked up, not imported: commands that never open a store do not load SQLAlchemy.
    database_errors = sys.modules.get("sqlalchemy.exc")
    if database_errors is not None and isinstance(exc, database_errors.SQLAlchemyError):
        return f"database error: {getattr(exc, 'orig', None) or exc}"
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback, and please report it)"


def cli_command(fn):
    """Turn errors into a one-line message and exit code 1 (tracebacks only with --debug)."""

    @functools.wraps(fn)
    def wrapper(ctx: typer.Context, *args, **kwargs):
        quiet_libraries(ctx.obj.debug)
        with translated_errors(ctx.obj.debug):
            return fn(ctx, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def translated_errors(debug: bool) -> Iterator[None]:
    """Errors as one line and exit code 1; with --debug the whole traceback, causes included."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except KeyboardInterrupt:
        raise typer.Exit(interrupted()) from None
    except Exception as exc:
        if debug:
            raise
        err(f"error: {_message(exc)}")
        raise typer.Exit(1) from None


def open_store(ctx: typer.Context, settings: Settings | None = None):
    """Open the store for this command; its connections close when the command ends."""
    from clipsearch.store import Store

    store = Store.open(settings or ctx.obj.settings)
    ctx.call_on_close(store.close)
    return store


def with_runtime(settings: Settings, runtime: str | None) -> Settings:
    """The settings with --runtime applied (it overrides CLIPSEARCH_RUNTIME)."""
    if runtime is None:
        return settings
    if runtime not in ("auto", "onnx", "torch"):
        raise ConfigError(f"--runtime {runtime!r}: use onnx, torch or auto")
    return settings.with_(runtime=runtime)


def warn_if_random(encoder) -> None:
    if encoder.is_random:
        err(
            f"warning: {encoder.model_id} has random weights; rankings are meaningless "
            "(use it for tests and benchmarks only)"
        )


_PILLOW_DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS as Pillow ships it


def allow_pixels(max_megapixels: float) -> None:
    """Let Pillow decode images up to the store's megapixel limit in this process.

    Pillow refuses images over twice Image.MAX_IMAGE_PIXELS (its decompression-bomb guard, a
    process-wide setting, so only entry points change it): an index run told to accept larger
    images (CLIPSEARCH_MAX_MEGAPIXELS) lifts the guard to that limit, never beyond it.
    """
    wanted = int(max_megapixels * 1e6 / 2)
    if "PIL.Image" not in sys.modules and wanted <= _PILLOW_DEFAULT_MAX_PIXELS:
        return  # Pillow, not loaded yet, will start with a limit that allows it: no need to import it now
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and wanted > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = wanted
