"""Where the nox sessions' uv takes ``torch`` from: a local CPU wheel already configured, or PyTorch's CPU index.

PyPI's ``torch==2.13.0`` for Linux is the CUDA build (several GB of ``nvidia-*``
packages). A machine that keeps the CPU wheel in a find-links folder (pip's
``find-links``, passed on to uv as ``UV_FIND_LINKS``) installs it from there,
offline from download.pytorch.org. Anywhere else uv is told
``UV_TORCH_BACKEND=cpu``, which takes the PyTorch packages (torch, triton,
torchvision, ...) from https://download.pytorch.org/whl/cpu and everything
else from the usual index. A ``UV_TORCH_BACKEND`` already set (``auto``,
``cu126``, ...) is left as it is.

The noxfile imports this module; it needs nothing but the standard library.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

TORCH_VERSION = "2.13.0"


def find_links_folders(find_links: str) -> list[Path]:
    """The local folders among find-links locations (paths or ``file:`` URLs, separated by blanks)."""
    folders = []
    for location in find_links.split():
        parsed = urlparse(location)
        if parsed.scheme == "file":
            folders.append(Path(unquote(parsed.path)))
        elif not parsed.scheme:
            folders.append(Path(location))
    return folders


def is_cpu_wheel(filename: str, version: str = TORCH_VERSION) -> bool:
    """Whether ``filename`` is a wheel of torch ``version``'s CPU build (``torch-2.13.0+cpu-...whl``)."""
    return re.fullmatch(rf"torch-{re.escape(version)}\+cpu(\.[a-z0-9]+)*-.+\.whl", filename) is not None


def torch_environment(environ: Mapping[str, str], local_files: Iterable[str],
                      version: str = TORCH_VERSION) -> dict[str, str]:
    """The variables to add to ``environ`` so that uv installs torch ``version``'s CPU build.

    ``local_files`` are the file names in the configured find-links folders.
    Nothing when ``UV_TORCH_BACKEND`` is already set (the user's choice) or a
    local folder holds the CPU wheel (found there, offline); otherwise
    ``UV_TORCH_BACKEND=cpu``.
    """
    if environ.get("UV_TORCH_BACKEND"):
        return {}
    if any(is_cpu_wheel(name, version) for name in local_files):
        return {}
    return {"UV_TORCH_BACKEND": "cpu"}


def local_files(find_links: str) -> list[str]:
    """The file names in the local find-links folders (unreadable ones are skipped)."""
    names = []
    for folder in find_links_folders(find_links):
        try:
            names += os.listdir(folder)
        except OSError:
            continue
    return names
