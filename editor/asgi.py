"""ASGI entry point: HTTP through Django, WebSockets and event streams through collab."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "editor.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from collab.routing import event_stream_urlpatterns, websocket_urlpatterns  # noqa: E402
from collab.socketauth import SocketAuthStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*event_stream_urlpatterns, re_path("", django_asgi_app)]),
        "websocket": AllowedHostsOriginValidator(SocketAuthStack(URLRouter(websocket_urlpatterns))),
    }
)

# What is loaded by now lives as long as the process. Freezing it keeps the collector's full
# passes to what is allocated later: with all of Django in them they took 45 ms each, a pause
# of every socket that showed as the p99 of typing latency under load.
gc.freeze()
