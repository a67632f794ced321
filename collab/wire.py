"""Broadcast frames straight onto daphne's sockets, each frame built once for all of them.

Through ASGI, every frame a socket gets passes daphne's reply handler, is encoded to UTF-8
and framed by autobahn on its own: with a hundred sockets on a document that was most of the
server's time. Under daphne a consumer's `send` is `partial(Server.handle_reply, protocol)`,
so the consumer can reach the socket's autobahn protocol and write a frame prepared once per
message (autobahn's PreparedMessage, meant for broadcast). Anything else (another server, the
test communicator, a socket not yet open or already closing) goes through ASGI as before.

Twisted's `write` only buffers: it registers the socket with the event loop and writes on the
next turn, two epoll_ctl calls and a callback for every frame, which cost more than the rest
of a frame's path. When nothing is waiting in the transport's buffer the frame is written to
the socket at once, as asyncio's own transports do; what the kernel does not take goes to
Twisted's buffer as before.

daphne gives every socket one limit for messages both ways (--websocket-max-message-size),
and `joined` carries a whole document, so it was set to 16 MiB and a client could make daphne
read and hand on 16 MiB messages that Tandem then refused at 256 KiB. `bound_inbound` sets
autobahn's limits on each socket to near the message limit instead: what Tandem sends is
written here, past autobahn's own check, so documents larger than the bound still load.
"""

import functools

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from daphne.server import Server

_last = (None, None)  # (text, prepared frame): a broadcast sends one text to every socket


def direct_socket(send):
    """daphne's protocol object behind an ASGI `send`, or None where `send` is something else."""
    if (
        isinstance(send, functools.partial)
        and getattr(send.func, "__func__", None) is Server.handle_reply
        and len(send.args) == 1
        and isinstance(send.args[0], WebSocketProtocol)
    ):
        return send.args[0]
    return None


def bound_inbound(protocol, limit):
    """Refuse client messages and frames over `limit` payload bytes; call before accepting.

    autobahn checks a frame's length when its header arrives (and a message's running total
    at each frame), so an oversized one is refused before its payload is read: it closes the
    socket with 1009 (message too big), and what the client still sends of it is discarded.
    autobahn copies these options from daphne's factory onto each socket as it connects;
    `failByDrop` off sends the 1009 close frame instead of only dropping the connection.
    """
    protocol.maxMessagePayloadSize = limit
    protocol.maxFramePayloadSize = limit
    protocol.failByDrop = False


def send_text(protocol, text):
    """Write `text` as one text frame; False where ASGI must send it instead.

    A socket that is closing or closed drops the frame, as daphne does once it has noticed:
    the session leaves its hub as the close completes. Sending through ASGI in that window
    raised autobahn's Disconnected into whoever was broadcasting.
    """
    if protocol.state in (WebSocketProtocol.STATE_CLOSING, WebSocketProtocol.STATE_CLOSED):
        return True
    if protocol.state != WebSocketProtocol.STATE_OPEN or protocol._perMessageCompress:
        return False
    global _last
    if _last[0] is not text:
        _last = (text, PreparedMessage(text.encode(), False, False, True).payloadHybi)
    if protocol.send_queue:
        protocol.sendData(_last[1])  # behind what autobahn still holds, in order
    else:
        _write_through(protocol.transport, _last[1])
    return True


def _write_through(transport, data):
    idle = (
        transport.connected
        and not transport.disconnecting
        and not getattr(transport, "TLS", False)
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    )
    sent = 0
    if idle:
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # Twisted's own write meets the error and closes the connection.
    if sent < len(data):
        transport.write(data[sent:] if sent else data)
