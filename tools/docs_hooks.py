"""MkDocs hooks (``mkdocs.yml``'s ``hooks``): the generated blocks of the pages, the API's sources, and a check that
the built CLI reference names every option of the parser.  The generation itself is ``docs_reference.py`` beside it."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tools/ is run from the clone, not installed

from tools import docs_reference  # noqa: E402

#: The page that holds the CLI reference, and the folder griffe reads the API from.
CLI_PAGE = "reference/cli.md"
API_SOURCES = ROOT / "build" / "docs-api"
SCOREBOARD_PAGE = "ecosystem/scoreboard.html"


def on_config(config):
    """Lays out the API's sources (:func:`lay_out_api_sources`) for mkdocstrings."""
    lay_out_api_sources()
    return config


def lay_out_api_sources() -> None:
    """Lays out the sources as the import namespace ``optspec`` (the repository keeps them at the top level, and
    an editable install maps them with an import hook that griffe does not read).  It runs before mkdocstrings
    reads its paths (``nox -s docs`` calls it first): in a fresh clone, where the folder does not exist yet,
    mkdocstrings would find the clone's own ``optspec/`` folder, which holds no subpackage, and no API page builds."""
    package = API_SOURCES / "optspec"
    package.mkdir(parents=True, exist_ok=True)
    for name, source in docs_reference.SOURCES.items():
        link = package / "__init__.py" if name == "optspec" else package / name.rpartition(".")[2]
        target = ROOT / source / "__init__.py" if name == "optspec" else ROOT / source
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def on_files(files, config):
    """The scoreboard's self-contained page (``docs/ecosystem/index.html``, excluded in ``mkdocs.yml``: its
    ``README.md`` is the site's page of that folder) served beside it as ``ecosystem/scoreboard.html``."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, SCOREBOARD_PAGE, abs_src_path=str(ROOT / "docs" / "ecosystem" / "index.html")))
    return files


def on_page_markdown(markdown, page, config, files):
    try:
        return docs_reference.expand(markdown)
    except docs_reference.GenerationError as exc:
        raise PluginError(f"{page.file.src_path}: {exc}") from exc


def on_post_build(config):
    from optspec.conformance.cli import parser

    built = Path(config["site_dir"]) / CLI_PAGE.removesuffix(".md") / "index.html"
    missing = docs_reference.missing_options(parser(), built.read_text())
    if missing:
        raise PluginError(f"{built} does not show these options of `optspec`: {', '.join(missing)}")
