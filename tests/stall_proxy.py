"""A TCP proxy that can stall: it keeps accepting and holding connections but passes nothing on.

A peer that holds the connection without answering (a database or Redis behind a network
black hole, a server stuck on a lock) is the fault that hangs clients; a stopped server only
refuses. Put the proxy in front of the real service, point the process under test at it, then
`stall()` and `resume()`:

    with StallProxy(5432) as proxy:      # listens on proxy.port
        env = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/db"}
        ...
        proxy.stall()                    # bytes either way are held, not lost
        proxy.resume()                   # what was held is delivered
        proxy.cut()                      # every open connection is reset
        proxy.refuse()                   # new connections are closed at once (a stopped
        proxy.refuse(False)              # service) until this
"""

import socket
import threading

HOST = "127.0.0.1"


class StallProxy:
    def __init__(self, target_port, target_host=HOST):
        self.target = (target_host, target_port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.refusing = False
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.lock = threading.Lock()
        self.closed = False
        self.accepts = 0
        threading.Thread(target=self._accept, daemon=True, name="stall-proxy").start()

    def stall(self):
        """From now on hold every byte, both ways, on old and new connections."""
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def cut(self):
        """Reset every open connection (new ones are accepted as before)."""
        with self.lock:
            connections, self.connections = self.connections, []
        for sock in connections:
            _shut(sock)

    def refuse(self, refusing=True):
        """From now on close each new connection at once, as a stopped service would."""
        self.refusing = refusing

    def close(self):
        self.closed = True
        self.flowing.set()
        _shut(self.listener)
        self.cut()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepts += 1
            if self.refusing:
                _shut(client)
                continue
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client):
        self.flowing.wait()  # a stalled service accepts but never answers the handshake
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            _shut(client)
            return
        with self.lock:
            self.connections += [client, upstream]
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        _shut(sink)
        _shut(source)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
