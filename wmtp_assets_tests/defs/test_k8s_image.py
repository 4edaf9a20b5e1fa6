"""The Kubernetes image installs every third-party module the package imports at run time.

The image is ``deploy/k8s/Dockerfile``; what it installs is read from its ``pip install`` lines
(``.[k8s]`` is this project's dependencies plus the extra), closed over each distribution's own
requirements as pip would install them (from the installed metadata). Every module imported
anywhere under ``wmtp_assets/`` (``ast``; function-level imports included) is mapped to its
distribution with ``importlib.metadata.packages_distributions()``.
"""

from __future__ import annotations

import ast
import shlex
import sys
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "deploy" / "k8s" / "Dockerfile"
PACKAGE = ROOT / "wmtp_assets"
# Modules the instance config the Helm chart writes loads by name (run launcher, storage).
INSTANCE_DISTRIBUTIONS = {"dagster-k8s", "dagster-postgres"}
PIP_OPTIONS_WITH_VALUE = {"--index-url", "-i", "--extra-index-url", "-c", "--constraint", "-r"}


def imported_modules(package: Path) -> set[str]:
    """Top-level names of every absolute import in ``package``'s sources, stdlib excluded."""
    names: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names} - {package.name}


def _pip_install_args(dockerfile: str) -> Iterator[str]:
    """The requirement arguments of every ``pip install`` in the Dockerfile's RUN lines."""
    for instruction in dockerfile.replace("\\\n", " ").splitlines():
        if not instruction.strip().upper().startswith("RUN "):
            continue
        for command in instruction.strip()[4:].split("&&"):
            words = shlex.split(command)
            if words[:2] != ["pip", "install"]:
                continue
            skip_next = False
            for word in words[2:]:
                if skip_next:
                    skip_next = False
                elif word in PIP_OPTIONS_WITH_VALUE:
                    skip_next = True
                elif not word.startswith(("-", "$")):
                    yield word


def image_requirements(dockerfile: Path, pyproject: Path) -> list[Requirement]:
    """What the Dockerfile asks pip for, the local project (``.[extras]``) expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements: list[Requirement] = []
    for arg in _pip_install_args(dockerfile.read_text()):
        if arg == "." or arg.startswith(".["):
            extras = arg[2:-1].split(",") if arg.startswith(".[") else []
            requirements += [Requirement(spec) for spec in project["dependencies"]]
            for extra in extras:
                requirements += [Requirement(s) for s in project["optional-dependencies"][extra]]
        else:
            requirements.append(Requirement(arg))
    return requirements


def installed_closure(requirements: Iterable[Requirement]) -> set[str]:
    """Canonical names of the requirements and everything they pull in, from installed metadata.

    A distribution not installed here contributes only its own name.
    """
    seen: set[str] = set()
    pending = [(req, frozenset(req.extras)) for req in requirements]
    while pending:
        req, extras = pending.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            sub = Requirement(spec)
            env = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(e) for e in env):
                pending.append((sub, frozenset(sub.extras)))
    return seen


def _uncovered(modules: set[str], installed: set[str]) -> tuple[dict[str, list[str]], set[str]]:
    """Modules whose distributions the image misses, and modules not installed here."""
    owners = metadata.packages_distributions()
    missing = {}
    unmapped = set()
    for module in sorted(modules):
        dists = [canonicalize_name(d) for d in owners.get(module, [])]
        if not dists:
            unmapped.add(module)
        elif not installed.intersection(dists):
            missing[module] = dists
    return missing, unmapped


def test_imported_module_finder_sees_function_level_and_from_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text(
        "import os\nimport yaml.constructor\nfrom . import b\nfrom pkg.c import d\n"
        "def f():\n    from torch import nn\n"
    )
    assert imported_modules(package) == {"yaml", "torch"}


def test_missing_distribution_is_reported(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text('RUN pip install --index-url "$URL" pyyaml \\\n  && echo done\n')
    installed = installed_closure(image_requirements(dockerfile, ROOT / "pyproject.toml"))
    assert installed == {"pyyaml"}
    missing, _ = _uncovered({"yaml", "torch"}, installed)
    assert missing == {"torch": ["torch"]}


def test_image_installs_every_imported_module() -> None:
    requirements = image_requirements(DOCKERFILE, ROOT / "pyproject.toml")
    installed = installed_closure(requirements)
    assert installed >= INSTANCE_DISTRIBUTIONS

    missing, unmapped = _uncovered(imported_modules(PACKAGE), installed)
    assert not missing, f"imported by wmtp_assets/ but not installed by the image: {missing}"
    if unmapped:
        pytest.skip(f"not installed in this environment, so not mapped: {sorted(unmapped)}")
