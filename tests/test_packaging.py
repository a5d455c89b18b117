"""The repository's packaging: the platform namespace, and a wheel that carries every module."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"frames": "framelab.frames", "toolkits": "framelab.toolkits", "platform": "framelab.platform"}


def test_platform_folder_never_shadows_the_standard_library():
    assert not (REPO / "platform" / "__init__.py").exists()
    code = "import platform, torch, ray; print(platform.system(), platform.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    system, where = out.stdout.split()
    assert system == "Linux"
    assert Path(where).parent.name.startswith("python3"), f"platform came from {where}"


def _modules() -> list[str]:
    names = []
    for folder, package in LAYERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            names.append(".".join([package, *parts]))
    return names


@pytest.mark.slow
def test_wheel_contains_and_imports_every_module(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel = next(dist.glob("framelab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for module in _modules():
        path = module.replace(".", "/")
        if f"{path}.py" not in names and f"{path}/__init__.py" not in names and f"{path}/" not in {n[: len(path) + 1] for n in names}:
            missing.append(module)
    assert not missing, f"modules missing from the wheel: {missing}"
    assert not any(n.startswith("framelab/platform/__init__") for n in names)
    # A fresh virtual environment (dependencies from the system site) imports every module from the wheel.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    code = (
        "import importlib, sys\n"
        f"mods = {_modules()!r}\n"
        "for m in mods:\n"
        "    mod = importlib.import_module(m)\n"
        "    assert 'site-packages' in (mod.__file__ or str(mod.__path__)), (m, mod.__file__)\n"
        "print(len(mods))\n"
    )
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
