"""The ``memex`` command: parse arguments, call one Memex method, render the result.

Exit codes: 0 success, 1 not found, 2 bad input, 3 store or environment problem;
141 when standard output is closed early (``memex export | head``), quietly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from memex.errors import MemexError, NotFoundError, ValidationError

EXIT_PIPE = 141  # as a shell reports a process stopped by SIGPIPE


def exit_code(exc: MemexError) -> int:
    """The exit code for an error: the one place errors become exit codes."""
    if isinstance(exc, NotFoundError):
        return 1
    if isinstance(exc, ValidationError):
        return 2
    return 3


def _fail(message: str, code: int) -> int:
    from memex.interfaces.cli.render import one_line

    sys.stderr.write(f"error: {one_line(message) or 'failed'}\n")
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``; return the exit status."""
    if list(argv or ()) == ["--version"]:  # asked by scripts that probe for memex: be quick
        from memex import __version__

        sys.stdout.write(f"memex {__version__}\n")
        return 0
    from memex.interfaces.cli.parser import UsageError, parse

    try:
        args = parse(argv)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except SystemExit as exc:  # --help and --version, which argparse prints itself
        return exc.code if isinstance(exc.code, int) else 0
    from memex.interfaces.cli.commands import COMMANDS, warnings_to_stderr
    from memex.interfaces.cli.invocation import Cli

    try:
        with warnings_to_stderr():
            COMMANDS[args.command](Cli(args))
    except MemexError as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _fail(text, exit_code(exc))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", 3)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``memex`` command."""
    for stream in (sys.stdout, sys.stderr):
        # File names need not be UTF-8; never fail on printing one.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        from memex.interfaces.cli import warm

        try:
            code = warm.run_warm(args)
        except warm.WarmError as exc:
            code = _fail(str(exc), 3)
        if code is None:
            code = run(args)
            if code == 0:
                warm.start_in_background(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`memex export | head`): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_PIPE
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        code = 130
    sys.exit(code)
