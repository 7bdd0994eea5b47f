"""The README's and the tutorial's commands and snippets run as written, outside the checkout, and say what the
pages show; the Python snippets of the spec's how-to run too.

Not run here: the install lines (``python3 -m venv .venv && .venv/bin/pip install ...``), which this test's
environment is the result of, and the nox lines, whose sessions are checked to exist and whose test command is
checked to be the one ``.ci/run`` runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "tutorial.md"
SPEC_HOWTO = ROOT / "docs" / "how-to" / "spec.md"
#: Pages whose nox command lines must name sessions of the noxfile.
PAGES = (README, TUTORIAL, *sorted((ROOT / "docs").rglob("*.md")))
BLOCK = re.compile(r"^```(?P<lang>\w*)(?: title=\"(?P<title>[^\"]+)\")?\n(?P<body>.*?)^```", re.M | re.S)


def blocks(page: Path, lang: str) -> list[tuple[str | None, str]]:
    """The fenced blocks of ``page`` in ``lang``, as (title, body)."""
    return [(m["title"], m["body"]) for m in BLOCK.finditer(page.read_text()) if m["lang"] == lang]


#: Lines not run: the installs, which this test's environment is the result of, and nox, checked apart.
NOT_RUN = ("python3 -m venv ", "nox ", ".venv/bin/nox ")


def run_page(page: Path, work: Path,
             commands: tuple[str, ...] = ("optspec ", "pytest ")) -> list[tuple[str, int, str, str]]:
    """Runs ``page`` in ``work`` as one shell session, in the order of the page: each titled Python block is
    written as its file, each line of a ``sh`` block is run (but :data:`NOT_RUN`), and each ``$`` line of a
    ``console`` block too; returns (command, exit code, stdout, stderr) for every line that starts with ``commands``."""
    script, ran = [], []
    for match in BLOCK.finditer(page.read_text()):
        if match["lang"] == "python" and match["title"]:
            script.append(f"cat > {match['title']} <<'OPTSPEC_EOF'\n{match['body']}OPTSPEC_EOF")
            continue
        lines = match["body"].splitlines()
        if match["lang"] == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        elif match["lang"] != "sh":
            continue
        for line in lines:
            if line.startswith(NOT_RUN) or not line.strip():
                continue
            if line.startswith(commands):
                index = len(ran)
                ran.append(line)
                line = f"{line} > out-{index}.txt 2> err-{index}.txt; echo $? > rc-{index}.txt"
            script.append(line)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, cwd=work, env=env,
                          timeout=600, check=False)
    assert done.returncode == 0, f"{page.name}'s script failed:\n{done.stderr[-3000:]}"
    return [(line, int((work / f"rc-{i}.txt").read_text()), (work / f"out-{i}.txt").read_text(),
             (work / f"err-{i}.txt").read_text()) for i, line in enumerate(ran)]


# --- the README ---------------------------------------------------------------------------------------------

def test_the_readme_is_a_doorway_of_at_most_150_lines():
    assert len(README.read_text().splitlines()) <= 150


def test_the_readmes_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    ci_sessions = ci.split(".venv/bin/nox ", 1)[1]
    for page in (README, ROOT / "docs" / "how-to" / "tests.md"):
        lines = [line for _, body in blocks(page, "sh") for line in body.splitlines() if " -s tests " in line]
        assert [line.split(".venv/bin/nox ", 1)[1] for line in lines] == [ci_sessions], page


def _nox_sessions() -> set[str]:
    return set(re.findall(r"^@nox\.session[^\n]*\n(?:@[^\n]*\n)*def (\w+)\(", (ROOT / "noxfile.py").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_nox_session_a_page_names_exists(page):
    named = {name for match in re.findall(r"nox -s ((?:[a-z_]+ ?)+)", page.read_text()) for name in match.split()}
    assert named - _nox_sessions() == set(), f"{page.name} names nox sessions the noxfile lacks"


def test_every_relative_link_of_the_readme_exists():
    links = re.findall(r"\]\((?!https?://)([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert links and [link for link in links if not (ROOT / link).exists()] == []


def test_the_readme_states_every_exit_code_of_the_cli():
    from tools.docs_reference import exit_codes_markdown

    codes = re.findall(r"^\| `(\d+)` \|", exit_codes_markdown(), re.M)
    stated = re.findall(r"^\| (\d+) \|", README.read_text(), re.M)
    assert codes and stated == codes


@needs("torch")
def test_the_readmes_commands_run_on_the_tutorials_optimizer(tmp_path):
    """The README's ``sh`` lines after the tutorial's (its fixed ``my_optim.py``), in the same folder."""
    (*_, (title, body)) = [block for block in blocks(TUTORIAL, "python") if block[0]]
    (tmp_path / title).write_text(body)
    ran = run_page(README, tmp_path)
    assert [command.split()[:2] for command, *_ in ran] == [
        ["optspec", "--version"], ["optspec", "certify"], ["optspec", "identify"], ["pytest", "--optspec-impl"]]
    for command, code, output, errors in ran:
        assert code == 0, f"$ {command}\nexit {code}\n{output[-3000:]}\n{errors[-3000:]}"
    version, _, identified, _ = (output for _, _, output, _ in ran)
    assert re.fullmatch(r"optspec \d+\.\d+\.\d+\S*\n", version) and identified.strip().splitlines()[-1] == "torch"
    assert (tmp_path / "cert" / "certificate.json").is_file()


# --- the tutorial -------------------------------------------------------------------------------------------

def _headline(line: str) -> str:
    """A verdict line without its figures: ``DOES NOT CONFORM: my_optim:AdamW vs torch``."""
    return line.split(" (", 1)[0]


def test_the_tutorial_has_its_steps():
    files = [title for title, _ in blocks(TUTORIAL, "python")]
    consoles = blocks(TUTORIAL, "console")
    assert files == ["my_optim.py", "my_optim.py"] and len(consoles) == 2
    assert [_headline(body.splitlines()[1]).split(":")[0] for _, body in consoles] == ["DOES NOT CONFORM", "CONFORMS"]


@needs("torch")
def test_the_tutorial_runs_as_shown(tmp_path):
    """Its files written and its lines run in order, as a reader does; each command's output must have the verdict
    shown, the exit code it implies, and every knob the shown hint names."""
    shown = [body.rstrip("\n").splitlines()[1:] for _, body in blocks(TUTORIAL, "console")]
    ran = run_page(TUTORIAL, tmp_path)
    assert len(ran) == len(shown)
    for (command, code, output, errors), expected in zip(ran, shown):
        report = f"$ {command}\nexit {code}\n{output[-3000:]}\n{errors[-3000:]}"
        assert output and _headline(output.splitlines()[0]) == _headline(expected[0]), report
        assert code == (0 if expected[0].startswith("CONFORMS") else 1), report
        for knobs in re.findall(r"most likely knobs?: ([\w=, ]+?) \(", "\n".join(expected)):
            for knob in re.findall(r"\w+=\w+", knobs):
                assert knob in output, report


# --- the spec's how-to --------------------------------------------------------------------------------------

SNIPPETS = [body for title, body in blocks(SPEC_HOWTO, "python") if not title]


def test_the_spec_howto_has_its_snippets():
    assert len(SNIPPETS) == 2, "tests/test_readme.py expects docs/how-to/spec.md's two Python snippets"


@needs("torch")
@needs("jax")
@needs("tensorflow")
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.splitlines()[-1][:40] for s in SNIPPETS])
def test_a_spec_howto_snippet_runs_as_written(snippet, tmp_path):
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, check=False)
    assert done.returncode == 0, f"snippet failed:\n{snippet}\n{done.stderr[-3000:]}"
