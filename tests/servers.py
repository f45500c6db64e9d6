"""Run our asyncio servers on 127.0.0.1:0 in a background thread, as production runs them."""

from __future__ import annotations

import asyncio
import threading


class ServerThread(threading.Thread):
    def __init__(self, start_server, **kwargs) -> None:
        super().__init__(daemon=True)
        self.start_server, self.kwargs = start_server, kwargs
        self.ready, self.error, self.port = threading.Event(), None, None
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self) -> None:
        from mailhost.daemon import new_event_loop  # the daemons' loop (uvloop by default)

        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(self._main())

    async def _main(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            server = await self.start_server("127.0.0.1", 0, **self.kwargs)
            self.port = server.sockets[0].getsockname()[1]
        except Exception as e:  # handed to the test thread, as Django's LiveServerThread does
            self.error = e
        self.ready.set()
        if self.error is None:
            await self.stopping.wait()
            server.close()
            try:
                async with asyncio.timeout(2):
                    await server.wait_closed()
            except TimeoutError:
                pass

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.join(timeout=5)


def start_in_thread(start_server, **kwargs) -> ServerThread:
    thread = ServerThread(start_server, **kwargs)
    thread.start()
    assert thread.ready.wait(10), "server did not start"
    if thread.error:
        raise thread.error
    return thread
