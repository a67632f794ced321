"""The demo command makes the published demo account locally, and never in production."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from editor.management.commands.demo import DEMO_PASSWORD, DEMO_USERNAME

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_demo_creates_the_demo_superuser_locally():
    call_command("demo")
    user = get_user_model().objects.get(username=DEMO_USERNAME)
    assert user.is_superuser and user.check_password(DEMO_PASSWORD)


def test_demo_refuses_in_production_and_creates_nobody(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="TANDEM_PRODUCTION"):
        call_command("demo")
    assert not get_user_model().objects.filter(username=DEMO_USERNAME).exists()


def test_demo_exits_nonzero_with_the_reason_under_tandem_production(tmp_path):
    env = {
        **os.environ,
        "TANDEM_PRODUCTION": "1",
        "SECRET_KEY": "a-production-key-for-this-test-only-0123456789",
        "ALLOWED_HOSTS": "docs.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'never-created.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "demo"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "refuses to run in production" in result.stderr
    assert not (tmp_path / "never-created.sqlite3").exists()
