"""What a run of ``lrs forward`` is told (:class:`ForwardOptions`), what it
counts (:class:`ForwardStats`) and how it reports, one line at a time on
stderr (:func:`say`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(slots=True)
class ForwardOptions:
    name: str = "forward"
    deliver: str = "all"  # for a new consumer: "all" of the stream or only "new" statements
    batch_size: int = 100
    max_deliveries: int = 5
    retry_delay: float = 5.0  # before a statement that failed (500) is delivered again
    wait_initial: float = 0.5  # outage backoff, doubled up to wait_cap
    wait_cap: float = 30.0
    fetch_timeout: float = 1.0
    until_caught_up: bool = False  # exit once nothing is pending (else run until stopped)


@dataclass(slots=True)
class ForwardStats:
    forwarded: int = 0
    skipped: int = 0
    parked: int = 0
    retried: int = 0
    waits: int = 0
    refused: int = 0  # messages that were not the log's event (connectors.forward.logcheck)
    replayed: int = 0  # second copies of events already forwarded (connectors.forward.checkpoint)
    # Of those forwarded, the ones read from the log: the stream no longer held them
    # (connectors.forward.logfill).  A try the target failed on, or one given up, sends nothing: not counted.
    from_log: int = 0

    def render(self) -> str:
        return (f"forwarded {self.forwarded}  skipped {self.skipped}  parked {self.parked}  "
                f"retried {self.retried}  outage waits {self.waits}  refused {self.refused}  "
                f"replayed {self.replayed}  from the log {self.from_log}")


def say(text: str) -> None:
    print(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} lrs forward: {text}", file=sys.stderr,
          flush=True)

