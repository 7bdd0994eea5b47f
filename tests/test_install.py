"""Installing optspec: a bare ``pip install optspec`` runs the CLI, the install hints fit where the user is,
and the nox sessions take torch's CPU build."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from optspec import adapters
from optspec.adapters import frameworks
from tools import torch_source

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
#: What a bare install must not bring: the frameworks and the plots.
OPTIONAL = ("torch", "jax", "optax", "tensorflow", "keras", "matplotlib")


# --- what the package declares ----------------------------------------------------------------------------


def _names(requirements: list[str]) -> set[str]:
    return {r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
            for r in requirements}


def test_the_certifier_needs_are_core_dependencies_and_the_plots_an_extra():
    core = _names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"numpy", "array-api-compat", "hypothesis"} <= core
    assert not core & {"torch", "jax", "optax", "tensorflow-cpu", "keras", "matplotlib", "pytest"}
    assert "matplotlib" in _names(extras["plots"])
    # `.[torch,conformance]` is what the README tells a vendor: the plot, and pytest for the plugin
    assert {"matplotlib", "pytest"} <= _names(extras["conformance"])


def test_the_torch_extra_and_the_noxfile_pin_the_same_torch():
    assert PYPROJECT["project"]["optional-dependencies"]["torch"] == [f"torch=={torch_source.TORCH_VERSION}"]
    assert 'TORCH_PIN = f"torch=={torch_source.TORCH_VERSION}"' in (ROOT / "noxfile.py").read_text()


# --- the install hint ---------------------------------------------------------------------------------------


def test_from_a_checkout_the_hint_is_the_editable_install():
    hint = frameworks.install_hint("jax", ROOT, ROOT)
    assert hint == "run `pip install -e '.[jax]'` or use a nox session, which installs it"


def test_from_a_checkout_elsewhere_the_hint_names_the_checkout(tmp_path):
    checkout = tmp_path / "my clone"
    hint = frameworks.install_hint("jax", checkout, tmp_path)
    assert hint == f"run `pip install -e '{checkout}[jax]'` or use a nox session, which installs it"


def test_from_an_installed_wheel_the_hint_is_the_package_from_the_index():
    # optspec on PyPI is another project: the hint installs the extra's own requirements
    assert frameworks.install_hint("jax", None, ROOT, requirements=["jax>=0.4.30", "optax>=0.2.4"]) == (
        "run `pip install 'jax>=0.4.30' 'optax>=0.2.4'`")
    assert frameworks._extra_requirements("jax") == PYPROJECT["project"]["optional-dependencies"]["jax"]


@pytest.mark.parametrize("checkout", [None, ROOT], ids=["installed", "checkout"])
def test_the_torch_hint_takes_the_cpu_build_on_one_line(checkout):
    hint = frameworks.install_hint("torch", checkout, ROOT, frameworks.describe("torch").pip_options,
                                   frameworks._extra_requirements("torch"))
    assert CPU_INDEX in hint and "\n" not in hint
    command = hint.split("`")[1]
    assert command == (f"pip install -e '.[torch]' {CPU_INDEX}" if checkout else
                       f"pip install torch==2.13.0 {CPU_INDEX}")


def test_this_checkout_is_found():
    assert frameworks._source_checkout() == ROOT


def _without(monkeypatch, framework: str) -> str:
    """Makes the framework's modules fail to import; returns the first, the one the error names."""
    missing = frameworks.describe(framework).modules
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name in missing:
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    monkeypatch.setattr(frameworks, "_IMPORTED", {})  # as in a process that has not imported it yet
    return missing[0]


@pytest.mark.parametrize(("checkout", "command"), [
    (ROOT, "pip install -e '.[jax]'"),
    (None, "pip install 'jax>=0.4.30' 'optax>=0.2.4' 'orbax-checkpoint>=0.11'"),
], ids=["checkout", "installed"])
def test_a_missing_framework_names_the_install_for_where_optspec_runs(monkeypatch, checkout, command):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(frameworks, "_source_checkout", lambda: checkout)
    module = _without(monkeypatch, "jax")
    with pytest.raises(adapters.SetupError) as raised:
        adapters.import_framework("jax")
    message = str(raised.value)
    assert message.startswith(f"framework 'jax' is not installed ({module} is missing): run `{command}`"), message
    assert ("nox session" in message) == (checkout is not None)
    assert "\n" not in message


# --- torch's CPU build in the nox sessions ------------------------------------------------------------------


def test_a_local_cpu_wheel_is_recognised():
    assert torch_source.is_cpu_wheel("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert torch_source.is_cpu_wheel("torch-2.13.0+cpu.cxx11.abi-cp311-cp311-linux_x86_64.whl")
    assert not torch_source.is_cpu_wheel("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert not torch_source.is_cpu_wheel("torch-2.13.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert not torch_source.is_cpu_wheel("torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert not torch_source.is_cpu_wheel("torchvision-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")


def test_the_find_links_folders_are_the_local_locations():
    assert torch_source.find_links_folders("/opt/wheels  file:///srv/my%20wheels https://example.org/w.html") == [
        Path("/opt/wheels"), Path("/srv/my wheels")]
    assert torch_source.find_links_folders("") == []


def test_a_local_cpu_wheel_is_installed_as_it_is():
    wheel = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert torch_source.torch_environment({}, [wheel, "other-1.0-py3-none-any.whl"]) == {}


def test_without_one_uv_takes_pytorchs_cpu_index():
    assert torch_source.torch_environment({}, []) == {"UV_TORCH_BACKEND": "cpu"}
    assert torch_source.torch_environment({}, ["torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"]) == {
        "UV_TORCH_BACKEND": "cpu"}


def test_a_backend_the_user_chose_is_kept():
    assert torch_source.torch_environment({"UV_TORCH_BACKEND": "cu126"}, []) == {}


def test_the_files_of_the_find_links_folders_are_listed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    links = f"{tmp_path / 'a'} {tmp_path / 'missing'} https://example.org/links.html"
    files = torch_source.local_files(links)
    assert files == ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert torch_source.torch_environment({}, files) == {}


# --- a bare install -----------------------------------------------------------------------------------------


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)


def _ok(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = _run(argv, **kwargs)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    """A virtual environment outside the checkout with the wheel and its core dependencies alone."""
    beside = Path(sys.executable).with_name("uv")  # the test extra installs it
    uv = str(beside) if beside.exists() else shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (the test extra installs it): it builds and installs the wheel")
    work = tmp_path_factory.mktemp("bare")
    source = work / "source"
    tracked = _ok(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    _ok([uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(source)], cwd=work)
    (wheel,) = (work / "dist").glob("optspec-*.whl")
    venv = work / "venv"
    _ok([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=work)
    # with its dependencies, from the index: numpy, array-api-compat, hypothesis
    _ok([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)], cwd=work)
    return venv


def _bare_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}


@pytest.mark.slow
def test_a_bare_install_holds_no_framework_and_no_plots(bare):
    probe = f"import importlib.util as u; print(' '.join(m for m in {OPTIONAL!r} if u.find_spec(m)))"
    done = _ok([str(bare / "bin" / "python"), "-c", probe], cwd=bare.parent, env=_bare_env())
    assert done.stdout.split() == []


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["list"], ["golden", "verify"],
                                  ["certify", "--framework", "numpy", "--impl", "spec.adamw", "--examples", "5"]],
                         ids=["help", "list", "golden-verify", "certify-numpy"])
def test_the_cli_of_a_bare_install_runs(bare, argv):
    done = _ok([str(bare / "bin" / "optspec"), *argv], cwd=bare.parent, env=_bare_env())
    if argv == ["list"]:
        assert "numpy: spec.adamw (adamw, torch)" in done.stdout
        assert "torch: not installed" in done.stdout
    if argv[0] == "certify":
        assert "CONFORMS: spec.adamw" in done.stdout


@pytest.mark.slow
def test_a_bare_install_names_the_pip_install_of_the_missing_framework(bare):
    done = _run([str(bare / "bin" / "optspec"), "certify", "--framework", "torch", "--impl", "torch.optim.AdamW"],
                cwd=bare.parent, env=_bare_env())
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("error: framework 'torch' is not installed (torch is missing): "
                                   f"run `pip install torch==2.13.0 {CPU_INDEX}`")
