"""The lock files pin every requirement to one vetted version, and bin/setup installs them.

requirements*.txt hold the ranges a maintainer accepts; requirements*.lock (bin/lock) the
exact versions with hashes, per Python where they differ (Django). A package added to a
requirements file without running bin/lock fails here.
"""

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"requirements.txt": "requirements.lock", "requirements-dev.txt": "requirements-dev.lock"}
# Every Python that pyproject.toml's requires-python admits today.
PYTHONS = ["3.11", "3.12", "3.13", "3.14"]


def requirements(name):
    """The requirements of one file, those of the files it includes (-r) too."""
    found = []
    for line in (ROOT / name).read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            found += requirements(line[3:].strip())
            continue
        assert not line.startswith("-"), f"{name}: an option the lock does not cover: {line}"
        found.append(Requirement(line))
    return found


def pins(name):
    """[(Requirement, [hash, ...]), ...] of a lock file (continuation lines joined)."""
    text = (ROOT / name).read_text()
    entries = []
    for entry in text.replace("\\\n", " ").splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        spec, *hashes = entry.split(" --hash=")
        entries.append((Requirement(spec), [value.strip() for value in hashes]))
    return entries


def environment(python):
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0")
    return env


def applies(requirement, env):
    return requirement.marker is None or requirement.marker.evaluate(env)


def pinned_for(lock, name, env):
    return [
        pin
        for pin, _ in lock
        if canonicalize_name(pin.name) == canonicalize_name(name) and applies(pin, env)
    ]


@pytest.mark.parametrize("source", LOCKS)
def test_every_requirement_has_one_exact_pin_in_range_for_every_python(source):
    lock = pins(LOCKS[source])
    for python in PYTHONS:
        env = environment(python)
        for requirement in requirements(source):
            if not applies(requirement, env):
                continue
            found = pinned_for(lock, requirement.name, env)
            where = f"{requirement.name} on Python {python} in {LOCKS[source]} (run bin/lock)"
            assert len(found) == 1, f"{len(found)} pins for {where}"
            (spec,) = found[0].specifier
            assert spec.operator == "==", where
            assert requirement.specifier.contains(spec.version, prereleases=True), (
                f"{spec.version} is outside {requirement.specifier}: {where}"
            )
            # An extra's packages (psycopg[binary]) are locked too.
            for extra in requirement.extras:
                for line in importlib.metadata.requires(requirement.name) or []:
                    needed = Requirement(line)
                    if needed.marker and needed.marker.evaluate({**env, "extra": extra}):
                        if not needed.marker.evaluate({**env, "extra": ""}):
                            assert pinned_for(lock, needed.name, env), f"{needed}: {where}"


@pytest.mark.parametrize("lock", LOCKS.values())
def test_every_locked_package_is_exact_and_hashed(lock):
    for pin, hashes in pins(lock):
        assert [spec.operator for spec in pin.specifier] == ["=="], pin
        assert hashes and all(value.startswith("sha256:") for value in hashes), pin


def test_the_dev_lock_keeps_the_runtime_versions():
    dev = {
        (pin.name, str(pin.marker)): str(pin.specifier)
        for pin, _ in pins(LOCKS["requirements-dev.txt"])
    }
    for pin, _ in pins(LOCKS["requirements.txt"]):
        assert dev.get((pin.name, str(pin.marker))) == str(pin.specifier), pin


@pytest.mark.parametrize(
    ("args", "lock"), [((), "requirements.lock"), (("--dev",), "requirements-dev.lock")]
)
def test_bin_setup_installs_the_lock_with_its_hashes(tmp_path, args, lock):
    """bin/setup run for real, with a .venv whose python records what it was asked."""
    (tmp_path / "bin").mkdir()
    shutil.copy(ROOT / "bin" / "setup", tmp_path / "bin" / "setup")
    shutil.copy(ROOT / "package-lock.json", tmp_path / "package-lock.json")
    calls = tmp_path / "calls"
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for path, name in ((tmp_path / ".venv" / "bin", "python"), (fakes, "npm")):
        path.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        (path / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}"}
    subprocess.run(["bash", "bin/setup", *args], cwd=tmp_path, env=env, check=True)
    pip = [line.split() for line in calls.read_text().splitlines() if "pip install" in line]
    assert len(pip) == 1, calls.read_text()
    assert pip[0][pip[0].index("-r") + 1] == lock
    assert "--require-hashes" in pip[0]
    assert (ROOT / lock).is_file()
