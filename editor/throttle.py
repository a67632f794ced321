"""Abuse limits on the pages: request rates for sign-up and new documents, and the login
lockout page.

Logins are throttled by django-axes (the `AXES_*` settings, docs/throttling.md); this module
only gives its lockout a page. Sign-ups and new documents are counted by django-ratelimit in
the "throttle" cache, which is Redis when several processes share the counts.
"""

import functools
import logging
import math

from django.conf import settings
from django.shortcuts import render
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

log = logging.getLogger("tandem.throttle")


def rate_limited(group, key, rate_setting, what):
    """Decorate a view so that POSTs past a rate answer 429 and never reach it.

    `key` is django-ratelimit's: "ip" (the client address, REMOTE_ADDR) or "user" (put the
    decorator inside `login_required`). The rate ("10/h") is read from the setting named
    `rate_setting` at each request. Every POST counts, accepted or not; other methods pass
    uncounted. `what` names the refused thing on the page ("sign-ups from your address").
    When the cache cannot be reached (Redis down) the POST goes through and a warning is
    logged: the limit is a brake on abuse, and an outage of Redis must not stop the site.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                usage = _count(request, group, key, getattr(settings, rate_setting))
                if usage and usage["should_limit"]:
                    log.warning("rate limit reached", extra={"group": group})
                    return limited_response(request, what, usage["time_left"])
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def login_rate_limited(view):
    """A login page whose POSTs are counted per address (TANDEM_LOGIN_RATE).

    django-axes locks one username at one address; this bounds one address trying a
    password on many usernames. Successful logins count too, so the rate is generous.
    """
    return rate_limited(
        "login", key="ip", rate_setting="TANDEM_LOGIN_RATE", what="logins from your address"
    )(view)


def _count(request, group, key, rate):
    try:
        return get_usage(request, group=group, key=key, rate=rate, increment=True)
    except (RedisError, OSError) as error:
        log.warning("rate limit not counted: %s", error, extra={"group": group})
        return None


def limited_response(request, what, seconds):
    """The 429 page: what was refused, and when to try again (also as Retry-After)."""
    seconds = max(1, math.ceil(seconds))
    response = render(
        request,
        "limited.html",
        {"what": what, "minutes": math.ceil(seconds / 60)},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response


def locked_out(request, original_response=None, credentials=None):
    """django-axes's lockout answer (AXES_LOCKOUT_CALLABLE): the lockout page, 429."""
    seconds = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds())
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": math.ceil(seconds / 60)},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
