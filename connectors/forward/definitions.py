"""The JetStream definitions ``lrs forward`` uses, read from ``schemas/nats/``.

The stream and consumer contracts are files shared with the LRS; this module
reads them as data (connectors do not import the LRS's own modules).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nats.js import api

EVENTS_STREAM = "LRS_EVENTS"
NATS_SCHEMAS_DIR = Path(os.environ.get("LRS_NATS_SCHEMAS_DIR") or Path(__file__).resolve().parents[2] / "schemas" / "nats")
CONSUMER_FILE = NATS_SCHEMAS_DIR / "forward-consumer.json"
DEAD_LETTER_FILE = NATS_SCHEMAS_DIR / "forward-dlq.json"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def consumer_config(name: str, deliver: str = "all") -> api.ConsumerConfig:
    """The durable consumer of forwarder ``name`` (``deliver``: all or new)."""
    raw = _load(CONSUMER_FILE)
    raw.update(durable_name=name, deliver_policy=deliver)
    return api.ConsumerConfig.from_response(raw)


def dead_letter_stream_config() -> api.StreamConfig:
    return api.StreamConfig.from_response(_load(DEAD_LETTER_FILE))


DEAD_LETTER_STREAM: str = _load(DEAD_LETTER_FILE)["name"]
