"""`lectern` command line: up, ingest, sync, ask, search, documents, delete, eval, bench, promote, cost,
keys.

One Typer app (`lectern.cli.common.app`); each module registers its commands on import.
"""

from __future__ import annotations

import sys

from lectern.cli.common import app

# isort: off
# the order of `lectern --help`: each module registers its commands on import
from lectern.cli import serve, ingest, query, evaluate, gate, cost, keys  # noqa: F401
# isort: on


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
