"""Production settings fail fast and pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_secret_key():
    result = run_manage("check", TANDEM_PRODUCTION="1", ALLOWED_HOSTS="docs.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "TANDEM_PRODUCTION" in result.stderr


def test_check_deploy_is_clean_in_production():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        TANDEM_PRODUCTION="1",
        SECRET_KEY="k" * 20 + "-Zq8!x7#pL2@vN4$mR6%tY9^wB1&cE3*hJ5",
        ALLOWED_HOSTS="docs.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
