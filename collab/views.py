"""The upstream half of the HTTP fallback transport (collab.eventstream has the rest)."""

from channels.exceptions import ChannelFull
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from . import eventstream

REFUSED_TOKENS = {
    "no_session": (410, "no such event stream; open a new one"),
    "not_yours": (403, "this event stream belongs to someone else"),
}


@require_POST
async def post_messages(request, document_id, token):
    """Protocol messages from a client on the event-stream transport, one JSON per line.

    Django's CSRF middleware guards this view as any other POST. Answers 204 when the lines
    were handled here, 202 when they were forwarded to the process holding the stream, 410
    when no stream has that token (the client opens a new one and resends), and 503 when
    the channel layer will hold no more for that process. A token is checked before anything
    is queued anywhere (eventstream.read_token).
    """
    user = await request.auser()
    if not user.is_authenticated:
        return _error(403, "not_authenticated", "log in again")
    verdict, channel = eventstream.read_token(token, user.pk, document_id)
    if verdict != "ok":
        return _refused(verdict)
    limit = eventstream.max_post_bytes()
    declared = request.headers.get("Content-Length", "")
    # Read no more than the limit, whatever the body claims (a chunked one claims nothing).
    too_large = declared.isdigit() and int(declared) > limit
    if not too_large:
        body = request.read(limit + 1)
        too_large = len(body) > limit
    if too_large:
        return _error(413, "too_large", f"at most {limit} bytes per POST")
    try:
        lines = [line for line in body.decode().split("\n") if line.strip()]
    except UnicodeDecodeError:
        return _error(400, "bad_json", "the body must be UTF-8 text")
    if len(lines) > eventstream.MAX_LINES_PER_POST:
        return _error(413, "too_large", f"at most {eventstream.MAX_LINES_PER_POST} per POST")
    try:
        number = int(request.headers.get("X-Tandem-Post", ""))
    except ValueError:
        number = 0
    if number < 1:
        return _error(400, "bad_message", "number each POST in X-Tandem-Post, from 1")
    stream = eventstream.streams.get(token)
    if stream is not None:
        eventstream.deliver(stream, user.pk, number, lines)  # the token names this user
        return HttpResponse(status=204)
    try:
        forwarded = await eventstream.forward(channel, document_id, token, user.pk, number, lines)
    except ChannelFull:
        return _error(503, "unavailable", "the stream's process is not keeping up; retry later")
    if forwarded:
        return HttpResponse(status=202)
    return _refused("no_session")


def _refused(code):
    status, message = REFUSED_TOKENS[code]
    return _error(status, code, message)


def _error(status, code, message):
    return JsonResponse({"type": "error", "code": code, "message": message}, status=status)
