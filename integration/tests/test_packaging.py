"""The six distributions build as wheels, and each tool installs alone.

Each tool goes into a fresh virtual environment from the wheels, with only
the libs it declares, and its command answers --help and --version. Third-
party packages come from uv's cache (--offline): tests touch no network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "pallet-oci": "libs/oci",
    "pallet-storage": "libs/storage",
    "pallet-runtime": "libs/runtime",
    "pallet-run": "tools/run",
    "pallet-transfer": "tools/transfer",
    "pallet-build": "tools/build",
}
# distribution -> (its command, the Pallet distributions it may bring along)
INSTALLS_ALONE = {
    "pallet-run": ("pallet-run", {"pallet-oci", "pallet-storage", "pallet-runtime"}),
    "pallet-transfer": ("pallet-transfer", {"pallet-oci", "pallet-storage"}),
    "pallet-build": ("pallet-build", {"pallet-oci", "pallet-storage", "pallet-runtime"}),
    "pallet-runtime": ("pallet-runtime", {"pallet-oci"}),
}


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed in the test environment")
    return found


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("wheels")
    for path in DISTRIBUTIONS.values():
        result = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(REPO / path)],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"building {path} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return outdir


def test_each_distribution_builds_one_wheel_with_only_its_own_package(wheels: Path) -> None:
    import zipfile

    built = sorted(wheel.name for wheel in wheels.glob("*.whl"))
    assert len(built) == len(DISTRIBUTIONS), built
    for distribution, path in DISTRIBUTIONS.items():
        [wheel] = wheels.glob(f"{distribution.replace('-', '_')}-0.1.0-*.whl")
        package = Path(path).name
        names = zipfile.ZipFile(wheel).namelist()
        code = [n for n in names if not n.startswith(f"{distribution.replace('-', '_')}-0.1.0.dist-info/")]
        assert code and all(n.startswith(f"pallet/{package}/") for n in code), code
        assert "pallet/__init__.py" not in names  # PEP 420 namespace
        assert f"pallet/{package}/py.typed" in names


@pytest.mark.parametrize("distribution", sorted(INSTALLS_ALONE))
def test_a_tool_installs_alone_and_answers(distribution: str, wheels: Path, tmp_path: Path) -> None:
    command, allowed_libs = INSTALLS_ALONE[distribution]
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [uv(), "pip", "install", "-q", "--offline", "--python", str(venv), "--find-links", str(wheels),
         "-c", str(REPO / "constraints.txt"), distribution],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    listed = subprocess.run([uv(), "pip", "freeze", "--python", str(venv)], capture_output=True, text=True, check=True)
    pallet = {line.split("==")[0] for line in listed.stdout.splitlines() if line.startswith("pallet-")}
    assert pallet == {distribution} | allowed_libs

    version = subprocess.run([str(venv / "bin" / command), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"{command} version 0.1.0")
    usage = subprocess.run([str(venv / "bin" / command), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0, usage.stderr
    assert f"Usage: {command}" in usage.stdout or f"usage: {command}" in usage.stdout
