"""A TCP proxy that makes a slow network, for browser tests.

Chromium's network emulation (DevTools `Network.emulateNetworkConditions`) slows HTTP
requests but not WebSocket frames, so the tests put this between the browser and daphne:
every chunk, in either direction, is delivered `latency` seconds after it was read, and each
direction is held to `rate` bytes per second.
"""

import asyncio
import threading

from tests.live_server import HOST


class SlowProxy:
    def __init__(self, target_port, latency=0.15, rate=48 * 1024):
        self.target_port = target_port
        self.latency = latency
        self.rate = rate
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
            raise RuntimeError("the slow proxy did not start")
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

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
