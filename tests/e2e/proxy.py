"""TCP proxies between a browser and daphne, for browser tests of bad networks.

`SlowProxy` makes a slow network and `OutageProxy` one that goes down and comes back. Both
carry HTTP and WebSockets alike (the page's base URL points at them), which the browser's
own tools do not: Chromium's network emulation slows HTTP but not WebSocket frames, and a
routed WebSocket that is not connected to the server still opens in the page.
"""

import asyncio
import threading

from tests.live_server import HOST


class _Proxy:
    """A TCP proxy to `target_port` on its own event loop and thread, for `with` blocks.

    Subclasses define `_connection(client_reader, client_writer)`, run for every accepted
    connection on the proxy's loop.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc):
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coroutine):
        """Run `coroutine` on the proxy's loop and wait for it (from the test's thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _shutdown(self):
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, HOST, 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _connection(self, client_reader, client_writer):
        raise NotImplementedError


class SlowProxy(_Proxy):
    """Every chunk, in either direction, is delivered `latency` seconds after it was read,
    and each direction is held to `rate` bytes per second."""

    def __init__(self, target_port, latency=0.15, rate=48 * 1024):
        super().__init__(target_port)
        self.latency = latency
        self.rate = rate

    async def _connection(self, client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pipe(client_reader, server_writer),
            self._pipe(server_reader, client_writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader, writer):
        loop = asyncio.get_running_loop()
        chunks = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(len(data) / self.rate)

        delivering = loop.create_task(deliver())
        try:
            while data := await reader.read(16384):
                chunks.put_nowait((loop.time() + self.latency, data))
            chunks.put_nowait((loop.time() + self.latency, b""))
            await delivering
        finally:
            delivering.cancel()


class OutageProxy(_Proxy):
    """A network that goes down and comes back, for HTTP and WebSockets alike.

    `down()` cuts every open connection; until `up()`, each new one is closed as soon as its
    request line has been read, so the browser sees the request fail before any answer (a
    WebSocket that never opens, an event stream that errors). `blip()` only cuts. The request
    lines refused are kept, and `wait_refused` waits for them, so a test can wait for a given
    attempt.
    """

    def __init__(self, target_port):
        super().__init__(target_port)
        self._up = True
        self._links = set()  # the client-side writers of connections open now
        self._refused = []  # request lines, e.g. "GET /documents/1/live/events/ HTTP/1.1"
        self._changed = threading.Condition()

    def down(self):
        """Returns once every connection is cut and new ones are refused."""
        self._call(self._set(False))

    def up(self):
        self._call(self._set(True))

    def blip(self):
        """A moment's outage: every open connection is cut, and new ones are let through."""
        self._call(self._cut())

    def refused(self, fragment):
        """How many requests whose line contains `fragment` were refused so far."""
        with self._changed:
            return sum(fragment in line for line in self._refused)

    def wait_refused(self, fragment, count=1, timeout=60):
        """Wait until `count` requests whose line contains `fragment` were refused while down
        (counting since the proxy started)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.refused(fragment) >= count, timeout):
                raise AssertionError(f"no request for {fragment} came; refused: {self._refused}")

    async def _set(self, up):
        self._up = up
        if not up:
            await self._cut()

    async def _cut(self):
        for writer in list(self._links):
            writer.transport.abort()  # at once, without waiting to send what is queued

    async def _connection(self, client_reader, client_writer):
        if not self._up:
            await self._refuse(client_reader, client_writer)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_writer.close()
            return
        ends = {client_writer, server_writer}
        self._links.update(ends)
        try:
            await asyncio.gather(
                _copy(client_reader, server_writer),
                _copy(server_reader, client_writer),
                return_exceptions=True,
            )
        finally:
            self._links.difference_update(ends)
            for writer in ends:
                writer.transport.abort()

    async def _refuse(self, reader, writer):
        try:
            line = (await reader.readline()).decode("latin-1").strip()
        finally:
            writer.transport.abort()
        with self._changed:
            self._refused.append(line)
            self._changed.notify_all()


async def _copy(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()
