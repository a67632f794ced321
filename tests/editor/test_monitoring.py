"""The metrics endpoint and the staff monitoring page: who may see them and what they show."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from collab import metrics
from editor.monitoring import internal_address

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = "203.0.113.5"

METRIC_NAMES = {
    "tandem_connections",
    "tandem_open_documents",
    "tandem_edits_committed",
    "tandem_ack_latency_seconds",
    "tandem_fan_out_recipients",
    "tandem_channel_layer_send_failures",
    "tandem_channel_layer_link_up",
    "tandem_channel_layer_link_losses",
    "tandem_channel_layer_recoveries",
    "tandem_rejected_messages",
    "tandem_reconnects",
    "tandem_fallbacks",
}


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", password="pw-for-staff", is_staff=True)


def families(response):
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def test_metrics_for_an_internal_address(client):
    metrics.rejected("bad_json")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = families(response)
    assert METRIC_NAMES <= set(found)
    rejected = {s.labels["code"]: s.value for s in found["tandem_rejected_messages"].samples
                if s.name.endswith("_total")}  # fmt: skip
    assert rejected["bad_json"] >= 1
    transports = {s.labels["transport"] for s in found["tandem_connections"].samples}
    assert transports == {"websocket", "http"}


def test_metrics_for_staff_from_outside(client, staff):
    client.force_login(staff)
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 200
    assert METRIC_NAMES <= set(families(response))


def test_metrics_refused_from_outside_without_staff(client, owner):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 403, "a scraper gets a 403, not a login redirect"
    assert b"tandem_" not in response.content
    client.force_login(owner)
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 403


def test_metrics_networks_setting(client, settings):
    settings.TANDEM_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.1.2.3").status_code == 200


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.168.1.2", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
        ("not-an-address", False),
    ],
)
def test_internal_address_default_networks(address, allowed):
    assert internal_address(address) is allowed


def test_networks_setting_fails_fast_on_a_typo():
    env = {**os.environ, "TANDEM_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,10.0.0.300/32"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "TANDEM_METRICS_ALLOWED_NETWORKS" in result.stderr


def test_production_does_not_redirect_scrapes_to_https():
    production = {"TANDEM_PRODUCTION": "1", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "a.example"}
    env = {**os.environ, **production, "DJANGO_SETTINGS_MODULE": "editor.settings"}
    code = "from django.conf import settings as s; print(s.SECURE_REDIRECT_EXEMPT)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "'^metrics$'" in result.stdout and "'^healthz$'" in result.stdout


def test_monitor_page_for_staff_only(client, staff, owner):
    url = reverse("monitor")
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response.url
    client.force_login(owner)
    assert client.get(url).status_code == 302
    client.force_login(staff)
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="monitor"' in page and reverse("monitor_data") in page
    assert "js/monitor.js" in page
    assert "one server process" in page
    assert 'data-chart="edits_per_second"' in page


def test_monitor_data_shape(client, staff, owner, monkeypatch):
    url = reverse("monitor_data")
    client.force_login(owner)
    assert client.get(url).status_code == 302
    client.force_login(staff)
    monkeypatch.setattr(metrics, "sampler", metrics.Sampler())
    data = client.get(url).json()
    assert data["sample_seconds"] == 5 and data["window_seconds"] == 600
    now = data["now"]
    assert set(now["connections"]) == {"websocket", "http"}
    assert isinstance(now["documents"], int)
    assert set(now) >= {"edits_total", "ack", "fan_out", "send_failures", "rejected",
                        "reconnects", "fallbacks", "pid"}  # fmt: skip
    assert set(now["ack"]) == {"count", "mean_ms", "p50_ms", "p99_ms"}
    assert set(now["reconnects"]) == {"websocket", "http"}
    # Polling records a sample when one is due (here: the first).
    assert len(data["samples"]) == 1
    sample = data["samples"][0]
    assert set(sample) == {"time", "connections", "documents", "edits_total",
                           "edits_per_second", "ack_p50_ms", "ack_p99_ms", "fan_out_mean",
                           "send_failures"}  # fmt: skip
    # The next poll, at once, adds none.
    assert len(client.get(url).json()["samples"]) == 1


def test_admin_index_links_to_the_monitor(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="{reverse("monitor")}"' in page
    assert "app-auth" in page and "app-editor" in page, "Django's app list is still there"
