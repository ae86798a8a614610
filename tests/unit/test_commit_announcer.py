"""A shared log's writer announces its commits about once an interval, each within it."""

from __future__ import annotations

import asyncio

from lrs.store.commit_notifications import CommitAnnouncer


async def test_commits_between_announcements_are_announced_once_with_the_latest_head() -> None:
    sent: list[int] = []
    done = asyncio.Event()

    async def send(position: int) -> None:
        sent.append(position)
        done.set()

    # 0.25 s: the checks below that it is not yet time run well within it on a loaded machine
    announcer = CommitAnnouncer(send, interval_s=0.25)
    assert announcer.with_group()  # the first group carries it
    announcer.committed(3, announced=True)
    assert not announcer.with_group()
    announcer.committed(5, announced=False)
    assert not announcer.with_group()
    announcer.committed(7, announced=False)
    await asyncio.wait_for(done.wait(), 5)
    await announcer.close()
    assert sent == [7] and announcer.sent_alone == 1
    assert not announcer.with_group()  # the one sent alone counts as the last announcement
    await asyncio.sleep(0.26)
    assert announcer.with_group()


async def test_an_announcing_group_covers_the_commits_before_it() -> None:
    sent: list[int] = []

    async def send(position: int) -> None:
        sent.append(position)

    announcer = CommitAnnouncer(send, interval_s=0.02)
    assert announcer.with_group()
    announcer.committed(1, announced=True)
    announcer.committed(2, announced=False)  # waits for the interval's end
    await asyncio.sleep(0)  # not a timed sleep: a slow machine would let the timer (0.02 s) fire first
    announcer.committed(3, announced=True)  # e.g. a group that carried one after a failed one
    await asyncio.sleep(0.05)
    await announcer.close()
    assert sent == []


async def test_while_a_group_is_being_committed_the_announcement_waits_for_it() -> None:
    sent: list[int] = []
    busy = True

    async def send(position: int) -> None:
        sent.append(position)

    announcer = CommitAnnouncer(send, interval_s=0.02, busy=lambda: busy)
    assert announcer.with_group()
    announcer.committed(4, announced=True)
    announcer.committed(6, announced=False)
    await asyncio.sleep(0.05)
    assert sent == []  # looked again after the busy group instead
    busy = False
    await asyncio.sleep(0.05)
    await announcer.close()
    assert sent == [6]


async def test_a_commit_not_yet_announced_is_announced_at_close() -> None:
    sent: list[int] = []

    async def send(position: int) -> None:
        sent.append(position)

    announcer = CommitAnnouncer(send, interval_s=60)
    assert announcer.with_group()
    announcer.committed(2, announced=True)
    announcer.committed(9, announced=False)
    await announcer.close()
    assert sent == [9]
