"""gslb.workers.outbox.Outbox: writes to a worker that does not read never
block, what waits stays bounded (the latest view replaces the one not yet
begun), and the reader gets whole messages, the latest view last."""

from __future__ import annotations

import asyncio
import multiprocessing

from gslb.workers.messages import Reload, Stop, View, ViewSnapshot
from gslb.workers.outbox import Outbox, frame


def big(generation: int) -> View:
    names = frozenset(f"origin-with-a-long-name-{i:05d}" for i in range(2000))
    return View(ViewSnapshot(generation, down=names))


async def test_a_reader_that_does_not_read_never_blocks_the_writer_and_gets_the_latest() -> None:
    here, there = multiprocessing.Pipe(duplex=True)
    outbox = Outbox(here, asyncio.get_running_loop())
    try:
        size = len(frame(big(0)))
        n = 200  # 200 x ~60 KB: far past any socket buffer
        for generation in range(n):
            outbox.send(big(generation))  # would block from the ~5th on without the outbox
        outbox.send(Reload(("a.yaml",)))
        outbox.send(Reload(("b.yaml",)))
        assert outbox.backlog < size + 3  # one frame in flight, one view, one reload waiting
        assert outbox.replaced >= n - 10
        got = []

        async def read_all() -> None:  # in a thread: recv blocks for a frame's rest
            while not got or got[-1] != Reload(("b.yaml",)):
                got.append(await asyncio.to_thread(there.recv))
        await asyncio.wait_for(read_all(), 10)
        views = [m.snapshot.generation for m in got if isinstance(m, View)]
        assert views == sorted(views) and views[-1] == n - 1
        assert got[-1] == Reload(("b.yaml",)) and Reload(("a.yaml",)) not in got
        assert outbox.backlog == 0 and outbox.sent == len(got)
    finally:
        outbox.close()
        here.close()
        there.close()


async def test_a_closed_outbox_or_a_gone_worker_drops_messages_quietly() -> None:
    here, there = multiprocessing.Pipe(duplex=True)
    outbox = Outbox(here, asyncio.get_running_loop())
    there.close()
    outbox.send(Stop())  # the peer is gone: no exception, the outbox closes
    outbox.send(big(1))
    assert outbox.closed or outbox.sent == 1
    outbox.close()
    outbox.send(Stop())
    assert outbox.closed and outbox.backlog == 0
    here.close()
