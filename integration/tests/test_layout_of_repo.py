"""The monorepo's layout is what pants.toml, the workspace and the brief say."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "libs/oci": "pallet-oci", "libs/storage": "pallet-storage", "libs/runtime": "pallet-runtime",
    "tools/run": "pallet-run", "tools/transfer": "pallet-transfer", "tools/build": "pallet-build",
}


def test_each_distribution_has_its_own_package_readme_marker_and_tests() -> None:
    for path, name in DISTRIBUTIONS.items():
        root = REPO / path
        project = tomllib.loads((root / "pyproject.toml").read_text())
        assert project["project"]["name"] == name
        assert project["build-system"]["build-backend"] == "hatchling.build"
        package = root / "src" / "pallet" / Path(path).name
        assert (package / "__init__.py").is_file() and (package / "py.typed").is_file()
        assert not (root / "src" / "pallet" / "__init__.py").exists(), "pallet is a PEP 420 namespace"
        assert (root / "README.md").read_text().startswith(f"# {name}")
        assert any((root / "tests").glob("test_*.py")), f"{path} has no tests"


def test_pants_source_roots_match_the_tree() -> None:
    config = tomllib.loads((REPO / "pants.toml").read_text())
    assert "pants.backend.python" in config["GLOBAL"]["backend_packages"]
    roots = set(config["source"]["root_patterns"])
    for path in DISTRIBUTIONS:
        assert f"/{path}/src" in roots and f"/{path}/tests" in roots
    for root in roots:
        assert (REPO / root.lstrip("/")).is_dir(), f"pants.toml names {root}, which does not exist"


def test_workspace_members_are_the_distributions() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    sources = config["tool"]["uv"]["sources"]
    assert set(DISTRIBUTIONS.values()) <= set(sources)
    assert config["tool"]["pytest"]["ini_options"]["testpaths"] == ["libs", "tools", "integration", "testing"]
    assert "build" not in config["tool"]["pytest"]["ini_options"]["norecursedirs"]


def test_no_lock_file_naming_a_registry_host_is_tracked() -> None:
    assert not (REPO / "uv.lock").exists() or "uv.lock" in (REPO / ".gitignore").read_text().split()
    constraints = (REPO / "constraints.txt").read_text()
    assert "://" not in constraints
