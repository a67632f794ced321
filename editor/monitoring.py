"""Monitoring views: the Prometheus endpoint and the staff page with the live figures.

The figures are those of the process that answers (collab.metrics): with several daphne
processes, Prometheus scrapes each one at its own port, and the staff page shows the one
the browser happened to reach.

The views are async so that they read the engine's state on its own event loop.
"""

import ipaddress

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collab import metrics


def internal_address(address):
    """Is `address` (REMOTE_ADDR) in TANDEM_METRICS_ALLOWED_NETWORKS?"""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return any(
        ip in ipaddress.ip_network(network, strict=False)
        for network in settings.TANDEM_METRICS_ALLOWED_NETWORKS
    )


@require_safe
@never_cache
async def prometheus_metrics(request):
    """The metrics in Prometheus text format, for staff or an internal address; else 403
    (never a login redirect, which a scraper would only follow to a login page)."""
    if not internal_address(request.META.get("REMOTE_ADDR")):
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return HttpResponseForbidden("Forbidden\n", content_type="text/plain")
    return HttpResponse(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)


@require_safe
@never_cache
@staff_member_required
async def monitor(request):
    """The staff page; monitor.js fills it in from `monitor_data`."""
    context = {
        "sample_seconds": metrics.SAMPLE_SECONDS,
        "window_minutes": metrics.WINDOW_SECONDS // 60,
    }
    # Template rendering may touch the session and user (base.html), so it runs in a thread.
    return await sync_to_async(render)(request, "monitoring/monitor.html", context)


@require_safe
@never_cache
@staff_member_required
async def monitor_data(request):
    """The current figures and the samples of the last minutes, as JSON:

    {"now": {...figures...}, "samples": [{"time": unix seconds, ...}, ...],
     "sample_seconds": 5, "window_seconds": 600}
    """
    metrics.sampler.sample_if_due()
    return JsonResponse(
        {
            "now": metrics.figures(),
            "samples": list(metrics.sampler.samples),
            "sample_seconds": metrics.SAMPLE_SECONDS,
            "window_seconds": metrics.WINDOW_SECONDS,
        }
    )
