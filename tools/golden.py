"""``python -m tools.golden``: regenerates the committed golden trajectories (``nox -s golden``).

The files are what :func:`optspec.conformance.golden.generate` computes, the
same function ``optspec golden verify`` checks them against, so a
regeneration with an unchanged spec is byte-identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from optspec.conformance import golden
from optspec.conformance.atomic import write_text


def regenerate(golden_dir: str | Path = golden.DEFAULT_DIR) -> int:
    """Writes every file and the manifest into a fresh directory, then swaps it in.

    Until the final rename the committed directory is untouched, so an
    interruption leaves it intact.
    """
    golden_dir = Path(golden_dir).resolve()
    files, manifest = golden.generate()
    staging = Path(tempfile.mkdtemp(dir=golden_dir.parent, prefix=f".{golden_dir.name}.new."))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the golden directory is as readable as any
    try:
        for relative, data in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)
        write_text(staging / "MANIFEST.json", golden.manifest_text(manifest))
        old = golden_dir.with_name(f".{golden_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if golden_dir.exists():
            golden_dir.rename(old)
        staging.rename(golden_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
