"""The engine's metrics, in the Prometheus client's types, and a short history of them.

Everything here is per process: with several daphne processes each has its own figures, and
Prometheus scrapes each process at its own port.

The engine calls the small recording functions (`committed`, `ack_latency`, `fan_out`, ...)
where the events happen, at most once per commit batch or broadcast and never once per
recipient, so an edit costs a few counter increments however many sockets it reaches. The
gauges (open connections by transport, open documents) are not kept up to date as sockets
come and go: a collector reads them from the hub registry when they are asked for.

The metrics live on their own `REGISTRY`, not on the client's global default one, so that
the endpoint shows exactly these and a module reload cannot register them twice.

`Sampler` keeps a bounded history (about the last ten minutes) for the staff page's chart.
It starts no task of its own: the hub registry's 5 s tick and the staff page's polling call
`sampler.sample_if_due()`, which records at most one sample every `SAMPLE_SECONDS`.
"""

import math
import os
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

TRANSPORTS = ("websocket", "http")

REGISTRY = CollectorRegistry()

# From 1 ms to 2 s: a local ack takes a few ms; past a second something is wrong.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
# Local sockets one broadcast reached.
FAN_OUT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

EDITS = Counter("tandem_edits_committed", "Edits committed to the operation log", registry=REGISTRY)
ACK_LATENCY = Histogram(
    "tandem_ack_latency_seconds",
    "Time from an edit's arrival at its hub to its ack being sent",
    buckets=ACK_BUCKETS,
    registry=REGISTRY,
)
FAN_OUT = Histogram(
    "tandem_fan_out_recipients",
    "Local sockets that one broadcast of committed edits was sent to",
    buckets=FAN_OUT_BUCKETS,
    registry=REGISTRY,
)
SEND_FAILURES = Counter(
    "tandem_channel_layer_send_failures",
    "Messages to other processes that the channel layer failed to send",
    registry=REGISTRY,
)
LINK_UP = Gauge(
    "tandem_channel_layer_link_up",
    "1 while this process's own beats come back through the channel layer, else 0",
    registry=REGISTRY,
)
LINK_LOSSES = Counter(
    "tandem_channel_layer_link_losses",
    "Times the channel layer stopped carrying this process's messages (or dropped some)",
    registry=REGISTRY,
)
RECOVERIES = Counter(
    "tandem_channel_layer_recoveries",
    "Times the link came back and the open documents were resynced from the database",
    registry=REGISTRY,
)
LINK_UP.set(1)  # the in-memory layer never fails; a Redis link is watched by the bridge
REJECTED = Counter(
    "tandem_rejected_messages",
    "Client messages answered with an error, by error code",
    ["code"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "tandem_reconnects",
    "Clients that joined again after losing their connection, by transport",
    ["transport"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "tandem_fallbacks",
    "Clients that fell back from WebSocket to the HTTP transport",
    registry=REGISTRY,
)
for _transport in TRANSPORTS:
    RECONNECTS.labels(_transport)  # Shown as 0 before the first one, not missing.


# -- recording (called by the engine) ---------------------------------------------------


def committed(n):
    """`n` edits were committed (once per commit batch)."""
    EDITS.inc(n)


def ack_latency(seconds):
    """An ack was sent `seconds` after its edit reached the hub."""
    ACK_LATENCY.observe(seconds)


def fan_out(n):
    """A broadcast of committed edits went to `n` local sockets (once per broadcast)."""
    FAN_OUT.observe(n)


def send_failure():
    """The channel layer failed to send a message to the other processes."""
    SEND_FAILURES.inc()


def link_lost():
    """The channel layer stopped carrying this process's messages."""
    LINK_UP.set(0)
    LINK_LOSSES.inc()


def link_restored():
    """The link came back; the open documents are resynced from the database."""
    LINK_UP.set(1)
    RECOVERIES.inc()


def rejected(code):
    """A client message was refused with the protocol error `code` (e.g. "bad_delta")."""
    REJECTED.labels(code).inc()


def reconnected(transport):
    """A client joined again after losing its connection; `transport` is "websocket" or
    "http"."""
    RECONNECTS.labels(transport).inc()


def fell_back():
    """A client gave up on WebSocket and continued over the HTTP transport."""
    FALLBACKS.inc()


# -- gauges read at scrape time --------------------------------------------------------


def live():
    """Open connections by transport and open documents, read from the hub registry now.

    Runs on the event loop (async views, the tick) or, from a sync view, in a thread: the
    dicts are copied with list(), which does not let the loop run in between.
    """
    from . import hubs  # hubs imports commit, which imports this module.

    registry = hubs.registry
    connections = dict.fromkeys(TRANSPORTS, 0)
    open_hubs = list(registry.hubs.values())
    for hub in open_hubs:
        for connection in list(hub.connections.values()):
            connections[connection.transport] += 1  # every session names its transport
    return connections, len(open_hubs)


class LiveCollector:
    """The gauges tandem_connections{transport} and tandem_open_documents."""

    def describe(self):
        yield GaugeMetricFamily("tandem_connections", "", labels=["transport"])
        yield GaugeMetricFamily("tandem_open_documents", "")

    def collect(self):
        connections, documents = live()
        family = GaugeMetricFamily(
            "tandem_connections", "Open client connections, by transport", labels=["transport"]
        )
        for transport, count in sorted(connections.items()):
            family.add_metric([transport], count)
        yield family
        yield GaugeMetricFamily(
            "tandem_open_documents", "Documents with a hub open in this process", documents
        )


REGISTRY.register(LiveCollector())


# -- reading the metrics back -------------------------------------------------------------


def _samples(metric, suffix):
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                yield sample


def _total(counter):
    return sum(sample.value for sample in _samples(counter, "_total"))


def _by_label(counter, label):
    return {s.labels[label]: s.value for s in _samples(counter, "_total")}


def _histogram(histogram):
    """(cumulative counts per upper bound, count, sum) of an unlabelled histogram."""
    buckets = [(float(s.labels["le"]), s.value) for s in _samples(histogram, "_bucket")]
    count = next(_samples(histogram, "_count")).value
    total = next(_samples(histogram, "_sum")).value
    return buckets, count, total


def quantile(q, buckets):
    """Estimate the q-quantile from cumulative bucket counts [(upper bound, count), ...],
    interpolating inside the bucket as Prometheus's histogram_quantile does. None if empty.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # Above the largest finite bound: report that bound.
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def figures():
    """The current totals, for the staff page (JSON-ready)."""
    connections, documents = live()
    ack_buckets, ack_count, ack_sum = _histogram(ACK_LATENCY)
    _, fan_count, fan_sum = _histogram(FAN_OUT)
    return {
        "pid": os.getpid(),
        "connections": connections,
        "documents": documents,
        "edits_total": _total(EDITS),
        "ack": {
            "count": ack_count,
            "mean_ms": 1000 * ack_sum / ack_count if ack_count else None,
            "p50_ms": _ms(quantile(0.5, ack_buckets)),
            "p99_ms": _ms(quantile(0.99, ack_buckets)),
        },
        "fan_out": {"count": fan_count, "mean": fan_sum / fan_count if fan_count else None},
        "send_failures": _total(SEND_FAILURES),
        "rejected": _by_label(REJECTED, "code"),
        "reconnects": _by_label(RECONNECTS, "transport"),
        "fallbacks": _total(FALLBACKS),
    }


def _ms(seconds):
    return None if seconds is None else 1000 * seconds


# -- history for the staff page ------------------------------------------------------------

SAMPLE_SECONDS = 5
WINDOW_SECONDS = 600


class Sampler:
    """A ring buffer of samples covering the last `WINDOW_SECONDS`.

    Each sample holds the time, connections by transport, open documents, edits committed
    (total and per second since the previous sample), the ack latency p50/p99 and the mean
    fan-out over that interval, and the send failures so far.
    """

    def __init__(self, every=SAMPLE_SECONDS, window=WINDOW_SECONDS):
        self.every = every
        self.window = window
        self.samples = deque(maxlen=int(window / every) + 1)
        self._previous = None  # (monotonic time, edits, ack buckets, fan-out count, sum)

    def sample_if_due(self):
        """Record a sample unless one was taken less than `every` seconds ago (a little
        slack, so a 5 s tick is not skipped for arriving a hair early)."""
        if self._previous is not None and time.monotonic() - self._previous[0] < self.every * 0.9:
            return None
        return self.sample()

    def sample(self):
        now = time.monotonic()
        connections, documents = live()
        edits = _total(EDITS)
        ack_buckets, _, _ = _histogram(ACK_LATENCY)
        _, fan_count, fan_sum = _histogram(FAN_OUT)
        entry = {
            "time": time.time(),
            "connections": connections,
            "documents": documents,
            "edits_total": edits,
            "edits_per_second": None,
            "ack_p50_ms": None,
            "ack_p99_ms": None,
            "fan_out_mean": None,
            "send_failures": _total(SEND_FAILURES),
        }
        if self._previous is not None:
            then, old_edits, old_buckets, old_fan_count, old_fan_sum = self._previous
            elapsed = now - then
            if elapsed > 0:
                entry["edits_per_second"] = max(0.0, edits - old_edits) / elapsed
            recent = [
                (b, c - old) for (b, c), (_, old) in zip(ack_buckets, old_buckets, strict=True)
            ]
            entry["ack_p50_ms"] = _ms(quantile(0.5, recent))
            entry["ack_p99_ms"] = _ms(quantile(0.99, recent))
            if fan_count > old_fan_count:
                entry["fan_out_mean"] = (fan_sum - old_fan_sum) / (fan_count - old_fan_count)
        self._previous = (now, edits, ack_buckets, fan_count, fan_sum)
        self.samples.append(entry)
        cutoff = entry["time"] - self.window
        while self.samples and self.samples[0]["time"] < cutoff:
            self.samples.popleft()
        return entry


sampler = Sampler()
