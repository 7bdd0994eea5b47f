"""``python -m tools.golden``: regenerates the committed golden trajectories (``nox -s golden``).

The files are what :func:`optspec.conformance.golden.generate` computes, the
same function ``optspec golden verify`` checks them against, so a
regeneration with an unchanged spec is byte-identical.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from optspec.conformance import golden
from optspec.conformance.atomic import replace_directory, write_text


def regenerate(golden_dir: str | Path = golden.DEFAULT_DIR) -> int:
    """Writes every file and the manifest into a fresh directory, then swaps it in.

    Until the final rename the committed directory is untouched, so an
    interruption leaves it intact.
    """
    files, manifest = golden.generate()

    def fill(staging: Path) -> None:
        for relative, data in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)
        write_text(staging / "MANIFEST.json", golden.manifest_text(manifest))

    replace_directory(golden_dir, fill)
    return len(files)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.golden", description=__doc__.splitlines()[0])
    parser.add_argument("--golden-dir", default=str(golden.DEFAULT_DIR), help="the directory to write")
    args = parser.parse_args(argv)
    count = regenerate(args.golden_dir)
    print(f"regenerated {count} golden files in {args.golden_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
