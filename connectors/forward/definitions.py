"""The JetStream definitions ``lrs forward`` uses, read from ``schemas/nats/``.

The stream and consumer contracts are files shared with the LRS, installed as
the package data of ``lrs_schemas``; this module reads them as data through
``importlib.resources`` (connectors do not import the LRS's own modules).
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from nats.js import api

EVENTS_STREAM = "LRS_EVENTS"
NATS_SCHEMAS_DIR: Traversable = files("lrs_schemas") / "nats"
CONSUMER_FILE = NATS_SCHEMAS_DIR / "forward-consumer.json"
DEAD_LETTER_FILE = NATS_SCHEMAS_DIR / "forward-dlq.json"


def _load(path: Traversable) -> dict[str, Any]:
    return json.loads(path.read_text())


def consumer_config(name: str, deliver: str = "all") -> api.ConsumerConfig:
    """The durable consumer of forwarder ``name`` (``deliver``: all or new)."""
    raw = _load(CONSUMER_FILE)
    raw.update(durable_name=name, deliver_policy=deliver)
    return api.ConsumerConfig.from_response(raw)


def dead_letter_stream_config() -> api.StreamConfig:
    return api.StreamConfig.from_response(_load(DEAD_LETTER_FILE))


DEAD_LETTER_STREAM: str = _load(DEAD_LETTER_FILE)["name"]
