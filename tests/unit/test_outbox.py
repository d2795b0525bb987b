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


async def test_a_worker_never_blocks_on_a_supervisor_that_does_not_read_and_loses_no_count(
        ) -> None:
    # the worker's side: stats shipped every "second" to a supervisor that
    # stopped reading; each message is big (2,000 answer keys), so the
    # socket fills within a few; shipping never blocks, stops taking while
    # anything waits, and once the supervisor reads again every count
    # arrives, none twice
    from gslb.stats import QueryStats
    from gslb.workers.messages import Stats
    from gslb.workers.outbox import ship_stats

    here, there = multiprocessing.Pipe(duplex=True)
    outbox: Outbox = Outbox(here, asyncio.get_running_loop())
    stats = QueryStats()
    counted, shipped, held = 0, 0, 0
    try:
        async with asyncio.timeout(10):
            for _ in range(300):
                for i in range(2000):
                    stats.answers[(f"pool-{i:04d}", "192.0.2.1")] = (
                        stats.answers.get((f"pool-{i:04d}", "192.0.2.1"), 0) + 1)
                stats.query(None, None, "192.0.2.9")
                counted += 1
                if ship_stats(outbox, stats, (0, 0, 0), frozenset()):
                    shipped += 1
                else:
                    held += 1
            assert held > 250  # the supervisor stopped reading: nothing more was taken
            got: list[Stats] = []

            async def read_until_done() -> None:
                while sum(sum(m.taken["queries"].values()) for m in got) < counted:
                    if not outbox.backlog:
                        ship_stats(outbox, stats, (0, 0, 0), frozenset())
                    if there.poll(0.05):
                        got.append(await asyncio.to_thread(there.recv))
                    await asyncio.sleep(0)  # let the outbox write what the socket takes
            await read_until_done()
        assert sum(sum(m.taken["queries"].values()) for m in got) == counted
        assert sum(m.taken["answers"][("pool-0000", "192.0.2.1")] for m in got) == counted
    finally:
        outbox.close()
        here.close()
        there.close()
