"""The `ratchet` command: run the stack, start and steer runs through the API, read traces.

Every API subcommand takes --api and --json; an error is one line on stderr and exit code 1,
a usage error exit code 2 (argparse's), and `follow` exits 0 only when the run completed.

This package is the program layer: it sits on top of everything and may import any package,
while nothing but it (and the tests) imports it. The commands by group are in `local` (no API),
`start` (new runs) and `runs` (runs that exist); `parser` wires them to their options.
"""

from __future__ import annotations

import os
import sys

from ratchet.cli.apiclient import ApiError
from ratchet.cli.parser import build_parser

__all__ = ["build_parser", "main", "run"]


def run(argv: list[str] | None = None) -> int:
    """The command, as an exit code: tests call this; `main` adds the hard process exit."""
    p = build_parser()
    try:
        args = p.parse_args(argv)
        code: int = args.fn(args)
        return code
    except SystemExit as stop:  # argparse: 2 for a usage error, 0 for --help
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(f"ratchet: {stop.code}", file=sys.stderr)
        return 1
    except ApiError as err:
        print(f"ratchet: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a person gets one line, never a traceback
        print(f"ratchet: {type(err).__name__}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the Temporal client can abort at exit (sdk-python#300).
    os._exit(code)
