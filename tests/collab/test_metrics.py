"""The engine's metrics: what a real edit through a socket moves, the gauges, the history."""

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from collab import hubs, metrics
from collab.bridge import Bridge

# Async tests run under asyncio_mode = "auto".
pytestmark = pytest.mark.django_db(transaction=True)


def value(name, **labels):
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check, timeout=30):
    """Wait until `check()` is true: the commit task records just after sending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_an_edit_moves_committed_ack_latency_and_fan_out(
    connect, document, owner, editor_user
):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    committed = value("tandem_edits_committed_total")
    acks = value("tandem_ack_latency_seconds_count")
    ack_seconds = value("tandem_ack_latency_seconds_sum")
    broadcasts = value("tandem_fan_out_recipients_count")
    recipients = value("tandem_fan_out_recipients_sum")

    await alice.submit(0, [{"insert": "Hi"}])
    await alice.receive_type("ack")
    await bob.receive_type("ops")

    await eventually(lambda: value("tandem_ack_latency_seconds_count") == acks + 1)
    assert value("tandem_edits_committed_total") == committed + 1
    assert 0 < value("tandem_ack_latency_seconds_sum") - ack_seconds < 2
    # One observation per broadcast, of the number of local sockets it went to.
    assert value("tandem_fan_out_recipients_count") == broadcasts + 1
    assert value("tandem_fan_out_recipients_sum") == recipients + 2


async def test_a_refused_edit_is_neither_committed_nor_acked(connect, document, owner):
    alice = await connect(owner, document)
    committed = value("tandem_edits_committed_total")
    acks = value("tandem_ack_latency_seconds_count")
    await alice.submit(0, [{"retain": 50}, {"insert": "x"}])  # Longer than the document.
    assert (await alice.receive_type("error"))["code"] == "does_not_fit"
    await alice.submit(0, [{"insert": "ok"}])
    await alice.receive_type("ack")
    await eventually(lambda: value("tandem_ack_latency_seconds_count") == acks + 1)
    assert value("tandem_edits_committed_total") == committed + 1


async def test_a_resent_edit_is_acked_again_and_timed(connect, document, owner):
    alice = await connect(owner, document)
    seq = await alice.submit(0, [{"insert": "once"}])
    await alice.receive_type("ack")
    committed = value("tandem_edits_committed_total")
    acks = value("tandem_ack_latency_seconds_count")
    await alice.submit(0, [{"insert": "once"}], seq=seq)
    assert (await alice.receive_type("ack"))["version"] == 1
    await eventually(lambda: value("tandem_ack_latency_seconds_count") == acks + 1)
    assert value("tandem_edits_committed_total") == committed


async def test_connections_and_documents_gauges(connect, document, owner):
    assert value("tandem_connections", transport="websocket") == 0
    alice = await connect(owner, document)
    assert value("tandem_connections", transport="websocket") == 1
    assert value("tandem_connections", transport="http") == 0
    assert value("tandem_open_documents") == 1

    # A connection of the HTTP transport says so in its `transport` attribute.
    hub = hubs.registry.hubs[document.pk]
    hub.connections["http-session"] = SimpleNamespace(transport="http")
    try:
        assert value("tandem_connections", transport="http") == 1
        assert value("tandem_connections", transport="websocket") == 1
    finally:
        del hub.connections["http-session"]

    await alice.close()
    assert value("tandem_connections", transport="websocket") == 0
    await eventually(lambda: value("tandem_open_documents") == 0)


async def test_counters_the_session_code_calls():
    before = {
        "rejected": value("tandem_rejected_messages_total", code="bad_delta"),
        "other": value("tandem_rejected_messages_total", code="rate_limited"),
        "ws": value("tandem_reconnects_total", transport="websocket"),
        "http": value("tandem_reconnects_total", transport="http"),
        "fallbacks": value("tandem_fallbacks_total"),
    }
    metrics.rejected("bad_delta")
    metrics.rejected("bad_delta")
    metrics.reconnected("http")
    metrics.fell_back()
    assert value("tandem_rejected_messages_total", code="bad_delta") == before["rejected"] + 2
    assert value("tandem_rejected_messages_total", code="rate_limited") == before["other"]
    assert value("tandem_reconnects_total", transport="http") == before["http"] + 1
    assert value("tandem_reconnects_total", transport="websocket") == before["ws"]
    assert value("tandem_fallbacks_total") == before["fallbacks"] + 1
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'tandem_rejected_messages_total{code="bad_delta"}' in text
    assert 'tandem_reconnects_total{transport="websocket"} ' in text  # Present at zero too.


class FailingLayer:
    async def group_send(self, group, message):
        raise ConnectionError("layer down")


async def test_channel_layer_send_failures_are_counted(engine):
    bridge = Bridge(hubs.registry)
    bridge.layer = FailingLayer()
    bridge.outbox = asyncio.Queue()
    before = value("tandem_channel_layer_send_failures_total")
    task = asyncio.get_running_loop().create_task(bridge._send())
    try:
        bridge.outbox.put_nowait(("tandem.document.1", {"type": "doc.ops"}))
        await eventually(lambda: bridge.send_failures == 1)
        assert value("tandem_channel_layer_send_failures_total") == before + 1
    finally:
        task.cancel()


def test_quantile_interpolates_within_the_bucket():
    buckets = [(0.001, 0), (0.01, 10), (0.1, 20), (float("inf"), 20)]
    assert metrics.quantile(0.5, buckets) == pytest.approx(0.01)
    assert metrics.quantile(0.25, buckets) == pytest.approx(0.0055)
    assert metrics.quantile(0.75, buckets) == pytest.approx(0.055)
    assert metrics.quantile(0.5, [(0.1, 0), (float("inf"), 0)]) is None
    # Everything above the largest bound: that bound, not infinity.
    assert metrics.quantile(0.5, [(0.1, 0), (float("inf"), 3)]) == 0.1


async def test_sampler_rates_and_recent_latency(connect, document, owner):
    sampler = metrics.Sampler(every=5, window=600)
    first = sampler.sample()
    assert first["edits_per_second"] is None and first["ack_p50_ms"] is None
    alice = await connect(owner, document)
    acks = value("tandem_ack_latency_seconds_count")
    for version in range(3):
        await alice.submit(version, [{"insert": "x"}])
        await alice.receive_type("ack")
    await eventually(lambda: value("tandem_ack_latency_seconds_count") == acks + 3)
    await asyncio.sleep(0.01)
    second = sampler.sample()
    assert second["edits_total"] == first["edits_total"] + 3
    assert second["edits_per_second"] > 0
    assert second["connections"] == {"websocket": 1, "http": 0}
    assert second["documents"] == 1
    assert 0 < second["ack_p50_ms"] <= second["ack_p99_ms"]
    print(f"ack p50 {second['ack_p50_ms']} ms, p99 {second['ack_p99_ms']} ms")
    assert second["fan_out_mean"] == 1
    third = sampler.sample()
    assert third["edits_per_second"] == 0 and third["ack_p50_ms"] is None
    assert list(sampler.samples) == [first, second, third]


def test_sampler_is_bounded_in_count_and_time():
    sampler = metrics.Sampler(every=5, window=60)
    for _ in range(50):
        sampler.sample()
    assert len(sampler.samples) == 13
    assert sampler.sample_if_due() is None, "the last sample is not 5 s old"
    # The next sample pushes out the first (count); the second is too old (time).
    sampler.samples[1]["time"] -= 3600
    sampler.sample()
    assert all(s["time"] > sampler.samples[-1]["time"] - 60 for s in sampler.samples)
    assert len(sampler.samples) == 12


async def test_hub_tick_records_a_sample(connect, document, owner, monkeypatch):
    sampler = metrics.Sampler()
    monkeypatch.setattr(metrics, "sampler", sampler)
    await connect(owner, document)
    hub = hubs.registry.hubs[document.pk]
    await hub.tick()
    await hub.tick()  # Not due yet: still one sample.
    assert len(sampler.samples) == 1
    assert sampler.samples[0]["documents"] == 1
