"""The settings a command runs with, and the runtime built from them.

Every command that reads settings comes through ``command_settings``, so
``log_level`` (or ``CASEMAIL_LOG_LEVEL``) and ``--verbose`` set the log
the same way for all of them, before anything is logged: the warnings
about unsafe settings and a generated signing key respect it too.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from casemail.config import Settings, load_settings, warn_unsafe


def command_settings(args: argparse.Namespace,
                     **listener: Any) -> Settings:
    """The settings for one command; ``listener`` overrides given on its
    command line (``serve --port``) replace those of the settings."""
    settings = load_settings(args.config)
    if listener:
        # Updated after validation: the command line checks its own.
        settings = settings.model_copy(update={
            "listener": settings.listener.model_copy(update=listener)})
    verbose = getattr(args, "verbose", False)
    logging.getLogger().setLevel(
        logging.DEBUG if verbose else settings.log_level.upper())
    warn_unsafe(settings)
    return settings


@contextmanager
def open_runtime(args: argparse.Namespace) -> Iterator[Any]:
    """The runtime for one command, from the settings it was given."""
    from casemail.runtime import build_runtime

    runtime = build_runtime(command_settings(args))
    try:
        yield runtime
    finally:
        runtime.close()
