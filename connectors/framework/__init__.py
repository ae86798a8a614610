"""The connector framework: a source yields chunks of items with a resumable
cursor, a pure mapping turns items into statements, the LRS sink POSTs them in
batches, and the runner checkpoints the cursor once the LRS has accepted
everything before it."""

from connectors.framework.checkpoint import CheckpointError, CheckpointFile
from connectors.framework.model import Chunk, Cursor, Mapped, Rejection, Skip, Source, SourceItem, Summary
from connectors.framework.runner import OrderedCompletion, RunOptions, run_connector
from connectors.framework.sink import LrsSink, Outgoing, SinkError, SinkFatal, SinkUnavailable

__all__ = [
    "CheckpointError",
    "CheckpointFile",
    "Chunk",
    "Cursor",
    "LrsSink",
    "Mapped",
    "OrderedCompletion",
    "Outgoing",
    "Rejection",
    "RunOptions",
    "SinkError",
    "SinkFatal",
    "SinkUnavailable",
    "Skip",
    "Source",
    "SourceItem",
    "Summary",
    "run_connector",
]
