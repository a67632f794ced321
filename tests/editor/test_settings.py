"""Production settings fail fast and pass Django's deployment checks."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer

from editor.settings import redis_channel_layer

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


@pytest.mark.services
async def test_deployments_on_other_redis_databases_never_hear_each_other(redis_url):
    """Pub/sub ignores the database number, so the settings put it in the channels' prefix.

    Both layers listen to the engine's group; the other database's message is published
    first and ours after it, so had it crossed over it would arrive first.
    """
    base, db = redis_url.rsplit("/", 1)
    ours_url, theirs_url = redis_url, f"{base}/{(int(db or 0) + 1) % 16}"
    ours = RedisPubSubChannelLayer(**redis_channel_layer(ours_url)["CONFIG"])
    theirs = RedisPubSubChannelLayer(**redis_channel_layer(theirs_url)["CONFIG"])
    try:
        channel = await ours.new_channel("tandem.process.")
        await ours.group_add("tandem.processes", channel)
        await theirs.group_add("tandem.processes", await theirs.new_channel("tandem.process."))
        await theirs.group_send("tandem.processes", {"type": "doc.ops", "from": "theirs"})
        await ours.group_send("tandem.processes", {"type": "doc.ops", "from": "ours"})
        first = await asyncio.wait_for(ours.receive(channel), 10)
        assert first["from"] == "ours"
    finally:
        await ours.flush()
        await theirs.flush()
