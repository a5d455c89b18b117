"""The repository's packaging: the platform namespace, a wheel that carries every module, and set-up from the lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"frames": "framelab.frames", "toolkits": "framelab.toolkits", "platform": "framelab.platform"}


def test_platform_folder_never_shadows_the_standard_library():
    import platform

    assert not (REPO / "platform" / "__init__.py").exists()
    code = "import platform, torch, ray; print(platform.system()); print(platform.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    system, where = out.stdout.splitlines()[-2:]
    assert system == platform.system()  # the standard library's answer, whatever the OS
    assert Path(where).resolve() == Path(platform.__file__).resolve(), f"platform came from {where}"


def _modules(root: Path = REPO) -> list[str]:
    names = []
    for folder, package in LAYERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            names.append(".".join([package, *parts]))
    return names


def _locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _import_every_module(python: Path, modules: list[str], site: Path) -> subprocess.CompletedProcess:
    code = (
        "import importlib, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods:\n"
        "    mod = importlib.import_module(m)\n"
        f"    assert (mod.__file__ or str(list(mod.__path__))).startswith({str(site)!r}), (m, mod.__file__)\n"
        "print(len(mods))\n"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=site.parent, timeout=600)


def test_the_lock_holds_every_dependency_of_framelab_with_its_extras():
    # pip check cannot see a missing dependency of an extra (it does not know which extras were asked
    # for), and `make setup` installs with --no-deps: walk the requirement tree from framelab[dev].
    from packaging.requirements import Requirement

    pins, missing, seen = _locked(), [], set()
    todo = [("framelab", frozenset({"dev"}))]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras | {""})):
                continue
            key = re.sub(r"[-_.]+", "-", req.name).lower()
            if key not in pins:
                missing.append(f"{req.name} (needed by {name}{sorted(extras) if extras else ''})")
            elif pins[key] in req.specifier or not req.specifier:
                todo.append((req.name, frozenset(req.extras)))
            else:
                missing.append(f"{req.name}=={pins[key]} does not satisfy {text!r} of {name}")
    assert not missing, "requirements.lock lacks (run `make lock`):\n" + "\n".join(sorted(set(missing)))


def test_the_running_environment_holds_exactly_the_locked_versions():
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in _locked().items()
             if installed.get(name) != version}
    assert not wrong, f"(locked, installed) differ; run `make setup`: {wrong}"


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
    # A fresh virtual environment that sees this environment's packages (checked above to be exactly
    # the locked ones) through a .pth file, and framelab only from the wheel installed into it.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "running-environment.pth").write_text("\n".join(sorted(deps)) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    run = _import_every_module(python, _modules(), site)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
def test_a_clone_sets_up_from_the_lock_in_a_new_venv_and_imports_every_module(clone_setup):
    # The README's set-up step, as `make demo` and `make test` run it, in a fresh clone: make creates the
    # venv and fills it (started when collection ended, see tests/background_setup.py).
    code, output, took = clone_setup.result()
    assert code == 0, output
    print(f"make setup in a new venv took {took:.0f} s")
    python, clone = clone_setup.venv / "bin" / "python", clone_setup.clone
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # Editable install: framelab's modules come from the clone.
    run = _import_every_module(python, _modules(clone), clone)
    assert run.returncode == 0, run.stderr[-3000:]
    frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            capture_output=True, text=True, timeout=300).stdout
    assert site.exists() and "torch==" in frozen


def _oldest_python() -> str | None:
    """An interpreter of the oldest Python that pyproject.toml allows (3.10), if this machine has one."""
    import glob
    import shutil

    candidates = [shutil.which("python3.10"), *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                                        capture_output=True, timeout=60).returncode == 0:
            return candidate
    return None


def test_every_module_compiles_under_the_oldest_supported_python(tmp_path):
    python = _oldest_python()
    if python is None:
        pytest.skip("no Python 3.10 interpreter on this machine (pyproject.toml allows 3.10)")
    folders = [str(REPO / name) for name in (*LAYERS, "tests", "benchmarks", "deploy")]
    out = subprocess.run([python, "-m", "compileall", "-q", "-d", str(tmp_path), *folders],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
