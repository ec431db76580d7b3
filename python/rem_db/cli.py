"""The ``rem`` command installed with the package: the same Rust CLI, in this process."""

from __future__ import annotations

import signal
import sys

from . import _native


def main() -> None:
    """Runs ``rem`` with this process's arguments and exits with its status."""
    # Ctrl-C ends the command as it ends the native binary (Python's handler would
    # only run once the Rust code returns).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    argv = ["rem", *sys.argv[1:]]
    sys.exit(_native.run_cli(argv))


if __name__ == "__main__":
    main()
