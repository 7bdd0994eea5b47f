"""``optspec`` and ``python -m optspec``: the CLI, with Ctrl-C handled from the first import on."""

import sys

from optspec.conformance.interrupt import interrupted


def run() -> int:
    """Imports the CLI and runs it; a Ctrl-C while the frameworks import is exit 130, not a traceback."""
    try:
        from optspec.conformance.cli import main
    except KeyboardInterrupt:
        return interrupted()
    return main()


if __name__ == "__main__":  # a spawned worker imports this module as __mp_main__
    sys.exit(run())
