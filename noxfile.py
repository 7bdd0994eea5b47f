"""nox sessions for optspec: tests, end_to_end, sharded, separate, lint, docs, conformance (and
conformance_separate), ecosystem, ecosystem_check, golden, golden_check, bench.

Installs go through uv.  uv does not read pip's configuration, so pip's
find-links (where a local CPU wheel of ``torch==2.13.0`` may live) are passed on
as ``UV_FIND_LINKS``.  When no find-links folder holds that wheel, uv is told
``UV_TORCH_BACKEND=cpu`` (``tools/torch_source.py``): PyPI's torch is the CUDA
build.  A ``UV_TORCH_BACKEND`` set by the caller is left as it is.

Where ``PYTHONDONTWRITEBYTECODE`` is set, every process would compile
torch's and TensorFlow's Python from source again (``import torch`` alone
takes twice as long).  The sessions' commands run without it, so each
environment writes the bytecode of the modules its processes import, once;
compiling every module at install (uv's ``UV_COMPILE_BYTECODE``) took 35 s
more for the tests' environment alone (40 s against 5 s, the uv cache warm,
on a 2-core machine under load), most of it for modules no test imports.
``nox -s bench`` alone compiles at install, as pip does, to time what a
user of a pip install feels.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nox

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # nox does not put the noxfile's folder there
from tools import torch_source

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests", "end_to_end", "sharded", "separate", "golden_check", "lint", "docs"]



def _registered_frameworks() -> tuple[str, ...]:
    """``adapters.frameworks.FRAMEWORKS``, read from the source: the noxfile runs before optspec is installed."""
    import ast

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "adapters", "frameworks.py")) as handle:
        for node in ast.parse(handle.read()).body:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "FRAMEWORKS":
                return tuple(ast.literal_eval(node.value))
    raise RuntimeError("adapters/frameworks.py defines no FRAMEWORKS")


FRAMEWORKS = _registered_frameworks()
ALL_EXTRAS = ".[torch,jax,tensorflow,keras,mlx,conformance,test]"
#: Frameworks whose tests run in an environment of their own: Paddle crashes a process that imported
#: TensorFlow first (``adapters/paddle/__init__.py``), which the test processes do; MindSpore needs NumPy 1,
#: which JAX 0.10 does not take.
SEPARATE = ("paddle", "mindspore")
#: Frameworks whose matrix cannot share the environment of ``nox -s conformance`` without arguments (MindSpore
#: needs NumPy 1); Paddle shares it, imported before TensorFlow.
OWN_MATRIX_ENVIRONMENT = ("mindspore",)
#: The real third-party optimizers the tests certify, installed with torch pinned.
TORCH_PIN = f"torch=={torch_source.TORCH_VERSION}"


def _pip_find_links() -> str:
    links = os.environ.get("PIP_FIND_LINKS", "")
    if links:
        return links
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True, text=True, check=False, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


if "UV_FIND_LINKS" not in os.environ and (links := _pip_find_links()):
    os.environ["UV_FIND_LINKS"] = " ".join(links.split())
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.update(torch_source.torch_environment(
    os.environ, torch_source.local_files(os.environ.get("UV_FIND_LINKS", ""))))


def _install_tf_keras(session: nox.Session) -> None:
    """tf-keras of the installed TensorFlow's version, without its requirement of the full ``tensorflow`` build
    (1.9 GB installed), whose modules ``tensorflow-cpu`` of that version already provides."""
    # run_install, not run: it runs under ``nox --install-only`` too, where run returns None
    version = session.run_install("python", "-c",
                                  "from importlib.metadata import version; print(version('tensorflow-cpu'))",
                                  silent=True).strip().splitlines()[-1]
    session.install("--no-deps", f"tf-keras=={'.'.join(version.split('.')[:2])}.*")


def _install_for_tests(session: nox.Session) -> None:
    """Every framework in one environment, and the real optimizers of the ``real`` extra with torch pinned."""
    session.install("-e", ALL_EXTRAS)
    _install_tf_keras(session)
    session.install("-c", _torch_pin(session), "-e", ".[real]")
    _check_cpu_torch(session)


def _torch_pin(session: nox.Session) -> str:
    """A constraints file that holds torch at :data:`TORCH_PIN`, for installs beside it."""
    pin = session.create_tmp() + "/torch-pin.txt"
    with open(pin, "w") as handle:
        handle.write(TORCH_PIN + "\n")
    return pin


def _check_cpu_torch(session: nox.Session) -> None:
    """Fails the session where the CUDA build of torch was installed (several GB, and not what was asked)."""
    session.run(
        "python", "-c",
        "import torch, sys; v = torch.__version__; "
        "sys.exit(0 if '+cu' not in v and not torch.version.cuda else f'CUDA torch installed: {v}')",
    )


def _pytest(session: nox.Session, marker: str, *paths: str) -> None:
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
    # Two workers, one per core: most of the time is single-threaded Python.  A worker that runs out of tests
    # takes some of the other's (``worksteal``), so that a few long tests at the end do not leave a core idle.
    session.run("pytest", f"--hypothesis-profile={profile}", "-n", os.environ.get("OPTSPEC_TEST_WORKERS", "2"),
                "--dist", "worksteal", "-m", marker, *paths, *session.posargs)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The suite's own tests on every framework, but those of ``end_to_end`` and ``sharded`` (budget 20 minutes on
    2 cores; 10 measured)."""
    _install_for_tests(session)
    _pytest(session, "not end_to_end and not conventions and not sharded")


@nox.session(python="3.11")
def end_to_end(session: nox.Session) -> None:
    """What a user and a vendor run, in one environment: the installed CLI, a wheel outside the checkout (the vendor
    flow), the README's snippets, real optimizers from PyPI, crashes and hangs in workers, whole reduced-dtype
    certifications (``END_TO_END`` in ``tests/conftest.py``); and every built-in of the rules beyond the Adam
    family held to its own preset through the CLI in each of its dtypes, each rule's matrix, identify and hidden
    defects (``CONVENTIONS``).  Budget 20 minutes on 2 cores (10 measured)."""
    _install_for_tests(session)
    _pytest(session, "end_to_end or conventions")


@nox.session(python="3.11")
def sharded(session: nox.Session) -> None:
    """torch's AdamW in every form, and Adam, certified under FSDP2, ZeRO-1 and DDP across 2 and 4 ranks
    and on one and two ranks, and optax's on a mesh (``SHARDED`` in ``tests/conftest.py``; budget 12 minutes on 2
    cores, where 4 ranks share 2 cores; 5 measured).  Only torch and JAX are installed."""
    session.install("-e", ".[torch,jax,conformance,test]")
    _check_cpu_torch(session)
    _pytest(session, "sharded", "tests/test_sharded.py", "tests/test_sharded_matrix.py", "tests/test_torchrun.py")


@nox.session(python="3.11")
@nox.parametrize("framework", SEPARATE)
def separate(session: nox.Session, framework: str) -> None:
    """The tests of each framework that cannot share the others' environment, in one of its own: Paddle's and
    those run on every registered framework (under 1 minute on 2 cores), MindSpore's (about 2 minutes)."""
    session.install("-e", f".[{framework},conformance,test]")
    _pytest(session, "not end_to_end and not conventions", "-k", framework, f"tests/test_{framework}.py",
            "tests/test_namespaces.py", "tests/test_drivers.py", "tests/test_framework_inference.py",
            "tests/test_pytest_plugin.py")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs with Material, ``mkdocs.yml``) built into ``site/`` with warnings as errors:
    a broken link, a reference to nothing, or a CLI option the generated reference lacks fails it.  No framework
    is installed: the API pages read the docstrings from the source, and the CLI reference its parser."""
    session.install("-e", ".[docs]")
    session.run("python", "-c", "from tools.docs_hooks import lay_out_api_sources; lay_out_api_sources()")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs,
                env={"NO_MKDOCS_2_WARNING": "1"})  # Material's notice about MkDocs 2, printed on every build


@nox.session(python="3.11")
def conformance(session: nox.Session) -> None:
    """Certifies built-in optimizers: ``nox -s conformance -- [FRAMEWORK] [CLI options]``.

    With no arguments, every built-in subject of every framework, as the
    matrix: one environment holds all of them but those of
    :data:`OWN_MATRIX_ENVIRONMENT`, whose matrix ``conformance_separate``
    runs next with the same options.  A framework of :data:`SEPARATE` named
    alone is certified there too.  The certificates, JUnit XML and report go
    to ``conformance_results/<FRAMEWORK or all>`` unless ``--out`` is given.
    """
    args = list(session.posargs)
    named = args[0] if args and args[0] in FRAMEWORKS else None
    options = args[1:] if named else args
    if named in SEPARATE:
        session.notify(f"conformance_separate(framework={named!r})", options)
        return
    command = named is None and bool(options) and not options[0].startswith("-")  # `-- certify ...`: run as it is
    if named is None and not command:
        for framework in OWN_MATRIX_ENVIRONMENT:
            session.notify(f"conformance_separate(framework={framework!r})", _in_one_process(options))
    session.install("-e", ALL_EXTRAS)
    if named in (None, "tf_keras"):
        _install_tf_keras(session)
    if named is None:
        session.install("-e", ".[paddle]")  # imported before TensorFlow, in registry order
    if command:
        session.run("optspec", *options)
    else:
        _matrix(session, named, options)


@nox.session(python="3.11")
@nox.parametrize("framework", SEPARATE)
def conformance_separate(session: nox.Session, framework: str) -> None:
    """The matrix of a framework of :data:`SEPARATE`, in an environment of its own:
    ``nox -s conformance -- mindspore`` (or no framework at all) runs it."""
    session.install("-e", f".[{framework},conformance]")
    _matrix(session, framework, list(session.posargs))


def _in_one_process(options: list[str]) -> list[str]:
    """The CLI ``options`` less ``--sharding`` and ``--world-size``: no framework of :data:`OWN_MATRIX_ENVIRONMENT`
    can shard, and the matrix of one framework refuses them where it cannot, as ``certify`` does."""
    kept, value_follows = [], False
    for option in options:
        if value_follows:
            value_follows = False
        elif option.split("=", 1)[0] in ("--sharding", "--world-size"):
            value_follows = "=" not in option
        else:
            kept.append(option)
    return kept


def _matrix(session: nox.Session, framework: str | None, options: list[str]) -> None:
    """``optspec matrix`` of ``framework`` (every one, if None) with the CLI ``options``, into
    ``conformance_results/<framework or all>`` unless they name ``--out``."""
    args = ["matrix", *(["--framework", framework] if framework else []), *options]
    if "--out" not in args:
        args += ["--out", f"conformance_results/{framework or 'all'}"]
    session.run("optspec", *args)


def _install_ecosystem(session: nox.Session) -> None:
    """Every framework of the scoreboard in one environment (each row runs in a process of its own, so Paddle
    never meets TensorFlow), with the third-party optimizers of the ``ecosystem`` extra, at the versions of
    ``tools/ecosystem-constraints.txt`` and torch pinned."""
    # Paddle pins opt-einsum==3.3.0 and heavyball needs >=3.4: uv is told to take 3.4 for both (Paddle imports
    # and steps its AdamW with it: the scoreboard's row).
    override = session.create_tmp() + "/opt-einsum-override.txt"
    with open(override, "w") as handle:
        handle.write("opt-einsum==3.4.0\n")
    session.install("-c", _torch_pin(session), "-c", "tools/ecosystem-constraints.txt", "--override", override,
                    "-e", f"{ALL_EXTRAS[:-1]},paddle,ecosystem]")
    _install_tf_keras(session)
    _check_cpu_torch(session)


def _mindspore_python(session: nox.Session) -> str:
    """The interpreter of an environment of MindSpore's own (it needs NumPy 1, which JAX 0.10 does not take),
    made with the uv of the session's environment, for the scoreboard's MindSpore rows."""
    path = session.create_tmp() + "/mindspore-env"
    session.run_install("uv", "venv", "-q", "--allow-existing", "--python", "3.11", path)
    python = f"{path}/bin/python"
    session.run_install("uv", "pip", "install", "-q", "--python", python,
                        "-c", "tools/ecosystem-constraints-mindspore.txt", "-e", ".[mindspore,conformance]")
    return python


@nox.session(python="3.11")
def ecosystem(session: nox.Session) -> None:
    """The scoreboard of real optimizers (``tools/ecosystem_rows.py``): regenerates ``docs/ecosystem``;
    ``nox -s ecosystem -- --only NAME ...`` regenerates those rows; ``-- --check`` is ``ecosystem_check``."""
    _install_ecosystem(session)
    session.run("python", "-m", "tools.ecosystem", "--python", f"mindspore={_mindspore_python(session)}",
                *session.posargs)


@nox.session(python="3.11")
def ecosystem_check(session: nox.Session) -> None:
    """Runs every scoreboard row afresh and fails where a committed row no longer matches (versions, verdicts,
    causes, identified conventions; not numbers).  Budget: 12 minutes on 2 cores, the install included (8 measured,
    with DeepSpeed's op already built on the machine)."""
    _install_ecosystem(session)
    session.run("python", "-m", "tools.ecosystem", "--check", "--python", f"mindspore={_mindspore_python(session)}",
                *session.posargs)


@nox.session(python="3.11")
def golden(session: nox.Session) -> None:
    """Regenerates the golden trajectories, deterministically and atomically."""
    session.install("-e", ".[conformance]")
    session.run("python", "-m", "tools.golden", *session.posargs)


@nox.session(python="3.11")
def golden_check(session: nox.Session) -> None:
    """Verifies the committed golden files, then fails on any diff under golden/."""
    session.install("-e", ".[conformance]")
    session.run("optspec", "golden", "verify", *session.posargs)
    session.run("git", "diff", "--exit-code", "--stat", "--", "golden/", external=True)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks: certification throughput per framework, the compiled spec against native AdamW, a default
    ``optspec certify`` end to end per framework split by stage, a case certified across 1, 2 and 4 ranks against
    one process, a quantized state's certification against a float one, and the certifier's detection power (the
    smallest defect it rejects, per dtype and knob)."""
    session.env["UV_COMPILE_BYTECODE"] = "1"  # what a pip install leaves: no process compiles a module it imports
    session.install("-e", ALL_EXTRAS)
    _install_tf_keras(session)
    session.run("python", "-m", "tools.bench", *session.posargs)
    session.run("python", "-m", "tools.bench_cli", "--rounds", "3")
    session.run("python", "-m", "tools.bench_sharded")
    session.run("python", "-m", "tools.bench_quantized")
    session.run("python", "-m", "tools.detection")
