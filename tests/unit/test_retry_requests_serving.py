"""Serving retry requests survives an unexpected error: the request is asked
again on the next round instead of the serving task ending for good."""

import asyncio

from projections import retry_requests


class FlakyPool:
    """A pool whose first claim raises an unexpected error, then finds nothing."""

    def __init__(self) -> None:
        self.claims = 0

    async def fetchrow(self, query: str, *args: object) -> None:
        self.claims += 1
        if self.claims == 1:
            raise RuntimeError("unexpected")
        return None


class Listening:
    async def add_listener(self, channel: str, callback: object) -> None:
        pass

    async def remove_listener(self, channel: str, callback: object) -> None:
        pass


class Runner:
    name = "competency"

    def __init__(self) -> None:
        self.pool = FlakyPool()


async def test_an_unexpected_error_does_not_end_the_serving() -> None:
    runner = Runner()
    stop = retry_requests.serve_retry_requests(runner, Listening(), poll_s=0.01)  # type: ignore[arg-type]
    try:
        for _ in range(200):
            if runner.pool.claims >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await stop()
    assert runner.pool.claims >= 3  # it kept claiming after the first round raised
