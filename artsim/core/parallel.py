"""`map` over worker processes for untrusted input: in order, bounded, and surviving a worker's death.

A decoder fed crafted bytes can do worse than raise: it can crash its process (a segfault
in a C library). ProcessPoolExecutor then fails every task in flight with BrokenProcessPool;
here the pool is restarted instead, the item at the head of the queue is rerun alone in a
process of its own to learn whether it was the culprit, and only the culprit is lost.
"""
from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Callable, Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(
    fn: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int,
    on_crash: Callable[[Item], Result],
    window_per_worker: int = 8,
    mp_context: BaseContext | None = None,
    initializer: Callable[[], object] | None = None,
) -> Iterator[Result]:
    """`map(fn, items)` over `workers` processes, in order, with a bounded number of items in
    flight (`Pool.imap` would read the whole input ahead, holding every embedded image in
    memory). An item whose process dies yields `on_crash(item)`. With one worker, `fn` runs
    in this process, where nothing can catch a crash. `mp_context` and `initializer` go to
    every ProcessPoolExecutor it starts.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    runner = _Runner(fn, workers, on_crash, dict(mp_context=mp_context, initializer=initializer))
    try:
        for item in items:
            runner.submit(item)
            if len(runner.pending) >= workers * window_per_worker:
                yield runner.next_result()
        while runner.pending:
            yield runner.next_result()
    finally:
        runner.pool.shutdown(cancel_futures=True)


class _Runner:
    def __init__(self, fn: Callable[[Item], Result], workers: int, on_crash: Callable[[Item], Result],
                 pool_options: dict) -> None:
        self.fn, self.workers, self.on_crash, self.pool_options = fn, workers, on_crash, pool_options
        self.pool = ProcessPoolExecutor(max_workers=workers, **pool_options)
        self.pending: deque[tuple[Item, Future]] = deque()

    def submit(self, item: Item) -> None:
        self.pending.append((item, self.pool.submit(self.fn, item)))

    def next_result(self) -> Result:
        item, future = self.pending.popleft()
        try:
            return future.result()
        except BrokenProcessPool:
            self._restart()
            return self._run_alone(item)

    def _restart(self) -> None:
        """A new pool, with every item still in flight submitted to it again."""
        log.warning("a worker process died; restarting the pool and isolating the item that killed it")
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = ProcessPoolExecutor(max_workers=self.workers, **self.pool_options)
        waiting = [item for item, _ in self.pending]
        self.pending.clear()
        for item in waiting:
            self.submit(item)

    def _run_alone(self, item: Item) -> Result:
        with ProcessPoolExecutor(max_workers=1, **self.pool_options) as solo:
            try:
                return solo.submit(self.fn, item).result()
            except BrokenProcessPool:
                return self.on_crash(item)
