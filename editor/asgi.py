"""ASGI entry point: HTTP through Django, WebSockets and event streams through collab."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "editor.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from collab import fullgc  # noqa: E402
from collab.origin import SameOriginSockets  # noqa: E402
from collab.routing import event_stream_urlpatterns, websocket_urlpatterns  # noqa: E402
from collab.socketauth import SocketAuthStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*event_stream_urlpatterns, re_path("", django_asgi_app)]),
        "websocket": SameOriginSockets(SocketAuthStack(URLRouter(websocket_urlpatterns))),
    }
)

# Python's full garbage-collection passes stopped every socket for up to 290 ms under load;
# from here on the engine makes them in quiet moments instead (collab.fullgc).
fullgc.take_over()
