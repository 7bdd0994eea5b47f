"""The CI jobs of ``docs/how-to/ci.md`` run as written: each file's shell lines (``run:`` of the GitHub Actions
workflow, ``script:`` of the GitLab CI job) in order, in a repository holding the tutorial's ``my_optim.py``, with
``OPTSPEC_WHEEL`` the URL of optspec's wheel built from this checkout.

``uses:`` steps are the runner's (checkout, Python, artifacts): the repository is the temporary folder and Python
a fresh virtual environment. ``pip`` there is ``uv pip --no-deps``: the wheel is installed as the line names it,
and its dependencies (torch's CPU build from its own index, which this machine cannot reach) come from this test
environment, as ``tests/test_wheel.py`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import needs
from tests.test_readme import TUTORIAL, blocks
from tests.test_wheel import installed  # noqa: F401  (the module-scoped fixture: the wheel in a venv)

pytestmark = needs("torch")

CI = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "ci"


def github_lines(workflow: dict, repo: Path) -> tuple[list[str], dict[str, str]]:
    """The ``run:`` lines, and the job's environment but ``OPTSPEC_WHEEL`` (the test's), on a runner in ``repo``."""
    (job,) = workflow["jobs"].values()
    env = {k: v.replace("${{ github.workspace }}", str(repo)) for k, v in job["env"].items() if k != "OPTSPEC_WHEEL"}
    return [step["run"] for step in job["steps"] if "run" in step], env


def gitlab_lines(pipeline: dict, repo: Path) -> tuple[list[str], dict[str, str]]:
    """The ``script:`` lines, and the job's variables, on a runner whose project folder is ``repo``."""
    job = pipeline["optspec"]
    return job["script"], {k: v.replace("$CI_PROJECT_DIR", str(repo)) for k, v in job["variables"].items()}


@pytest.mark.parametrize(("name", "lines_of"), [("github-workflow.yml", github_lines),
                                                 ("gitlab-ci.yml", gitlab_lines)])
def test_a_ci_job_runs_as_written_and_passes_the_tutorials_optimizer(installed, tmp_path, name, lines_of):  # noqa: F811
    repo = tmp_path / "repo"
    lines, job_env = lines_of(yaml.safe_load((CI / name).read_text()), repo)
    assert lines[0].startswith("pip install") and any(line.startswith("optspec certify") for line in lines)
    (wheel,) = (installed.parent / "dist").glob("optspec-*.whl")
    (*_, (title, body)) = [block for block in blocks(TUTORIAL, "python") if block[0]]
    repo.mkdir()
    (repo / title).write_text(body)
    venv = tmp_path / "venv"
    uv = str(Path(sys.executable).with_name("uv")) if Path(sys.executable).with_name("uv").exists() else shutil.which("uv")
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    import sysconfig

    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "pip").write_text(f'#!/bin/sh\n[ "$1" = install ] || exit 2\nshift\n'
                              f'exec {uv} pip install --quiet --python {venv}/bin/python --no-deps "$@"\n')
    (shim / "pip").chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "OPTSPEC_WHEEL": wheel.as_uri(), "GITHUB_STEP_SUMMARY": str(summary), **job_env}
    env.pop("VIRTUAL_ENV", None)
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=repo, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, f"$ {line}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    optspec = subprocess.run([str(venv / "bin" / "python"), "-c", "import optspec; print(optspec.__file__)"],
                             capture_output=True, text=True, check=True, timeout=60, env=env).stdout
    assert Path(optspec.strip()).is_relative_to(venv), "the job certified with another optspec than the wheel's"
    assert (repo / "cert" / "certificate.json").is_file() and (repo / "cert" / "junit.xml").is_file()
    if name.startswith("github"):
        assert summary.read_text().startswith("# optspec")
