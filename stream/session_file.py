"""Session files: the exact bus messages with their receive times, in MCAP.

Layout of a session file (readable by any MCAP tool, e.g. ``mcap info``, Foxglove):
  - one channel per bus topic (channel topic = bus topic), no MCAP schema, message encoding
    ``bodytalk-multipart/msgpack``;
  - message data = ``schema.pack_frames(frames[1:])``: the frames after the topic, byte for byte;
  - ``log_time`` = receive wall clock (ns); ``publish_time`` = the same (the sender's ``ts`` stays
    inside the payload, so recording never has to decode); ``sequence`` = the recorder's receive
    counter, so file order is receive order;
  - a ``bodytalk`` metadata record (what was recorded, from where);
  - optionally, derived channels for other tools (``add``: Foxglove schemas, ROS 2 messages) next
    to the bus channels; the reader skips them, so the session still replays unchanged.

Crash safety: chunks are small and the writer closes the open chunk at least every
``flush_every`` seconds (``Writer.flush``), so a ``kill -9`` loses at most that much. The reader
scans records sequentially instead of trusting the summary, so a finished file and one cut off
mid-record (no footer, no summary) read the same way; ``truncated`` tells them apart.
"""
from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from typing import Iterator

from mcap.exceptions import McapError
from mcap.records import Channel, Footer, Header, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from bodytalk import __version__
from bodytalk.stream import schema

MESSAGE_ENCODING = "bodytalk-multipart/msgpack"
PROFILE = "bodytalk"
METADATA_NAME = "bodytalk"


class SessionFileError(RuntimeError):
    """A session file could not be opened or read; the message says what to do."""


@dataclass(frozen=True)
class Record:
    """One recorded bus message."""
    topic: str
    log_time: int        # ns since the epoch: when the recorder received it
    publish_time: int    # ns since the epoch
    frames: list[bytes]  # the bus message exactly as received, topic first

    @property
    def t(self) -> float:
        """Receive time in seconds (what replay paces by)."""
        return self.log_time / 1e9


class SessionWriter:
    """Appends bus messages to a new MCAP session file; ``close()`` writes the index and summary."""

    def __init__(self, path: str | os.PathLike, metadata: dict[str, str] | None = None,
                 flush_every: float = 0.25, chunk_size: int = 256 * 1024,
                 clock=time.monotonic) -> None:
        if flush_every <= 0:
            raise ValueError("flush_every must be > 0 seconds")
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "wb")
        except OSError as err:
            raise SessionFileError(f"cannot create session file {self.path}: {err.strerror}") from None
        # zstd chunks: windows compress well; a chunk closes at chunk_size or on the flush timer.
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library=f"bodytalk {__version__}")
        self._writer.add_metadata(METADATA_NAME, {"version": __version__, **(metadata or {})})
        self._channels: dict[str, int] = {}
        self._derived: dict[tuple, int] = {}  # (topic, encoding, schema) -> channel of a derived message
        self._schemas: dict[str, int] = {}   # schema name -> id
        self.derived = 0
        self.counts: dict[str, int] = {}   # topic -> messages written
        self.count = 0
        self.flush_every, self._clock = flush_every, clock
        self._last_flush = clock()
        self._writer.flush()  # header on disk at once: even an instant crash leaves an MCAP file

    def write(self, frames: list[bytes], log_time: int | None = None) -> None:
        """Append one bus message ``[topic, *frames]``, received at ``log_time`` ns (default now)."""
        if len(frames) < 1:
            raise ValueError("a bus message has at least a topic frame")
        topic = bytes(frames[0]).decode("utf-8", errors="replace")
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._writer.register_channel(topic=topic, message_encoding=MESSAGE_ENCODING,
                                                    schema_id=0)
            self._channels[topic] = channel
        now = time.time_ns() if log_time is None else log_time
        self._writer.add_message(channel, log_time=now, publish_time=now, sequence=self.count,
                                 data=schema.pack_frames(frames[1:]))
        self.count += 1
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.tick()

    def add(self, topic: str, message_encoding: str, data: bytes, log_time: int,
            schema: tuple[str, str, bytes] | None = None) -> None:
        """Append a derived message (not a bus message) on its own channel; ``schema`` is
        ``(name, encoding, data)`` (None: a schemaless channel, e.g. JSON)."""
        key = (topic, message_encoding, schema[0] if schema else None)  # a topic may carry two kinds
        channel = self._derived.get(key)
        if channel is None:
            schema_id = 0
            if schema is not None:
                schema_id = self._schemas.get(schema[0]) or self._writer.register_schema(*schema)
                self._schemas[schema[0]] = schema_id
            channel = self._derived[key] = self._writer.register_channel(
                topic=topic, message_encoding=message_encoding, schema_id=schema_id)
        self._writer.add_message(channel, log_time=log_time, publish_time=log_time, data=data)
        self.derived += 1

    def tick(self) -> bool:
        """Flush the open chunk if ``flush_every`` has passed; call it when idle too."""
        now = self._clock()
        if now - self._last_flush < self.flush_every:
            return False
        self._writer.flush()
        self._last_flush = now
        return True

    def close(self) -> None:
        """Write the last chunk, indexes and summary, and close the file."""
        if self._file.closed:
            return
        self._writer.finish()
        self._file.close()

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SessionReader:
    """Reads a session file in file (= receive) order, recovering a truncated one.

    After ``records()`` is exhausted: ``truncated`` is True when the file ended before its footer
    (a crashed recorder); ``skipped`` counts messages whose payload was not a frame list.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise SessionFileError(f"no session file at {self.path}; record one with `bodytalk record`")
        self.size = os.path.getsize(self.path)
        self.metadata: dict[str, str] = {}
        self.truncated = False
        self.skipped = 0

    def records(self, prefix: str = "") -> Iterator[Record]:
        """Every message whose topic starts with ``prefix``."""
        channels: dict[int, str] = {}
        self.truncated, self.skipped = True, 0
        with open(self.path, "rb") as f:
            it = StreamReader(f, validate_crcs=True).records
            header = None  # the writer puts it on disk at once, so a session file always has one
            while True:
                try:
                    rec = next(it)
                except StopIteration:
                    return
                except (McapError, struct.error, ValueError, EOFError) as err:
                    if header is None:
                        raise SessionFileError(f"{self.path} is not an MCAP session file "
                                               f"({str(err) or type(err).__name__})") from None
                    # A tail cut off mid-record (EndOfFile, short field) or a half-written chunk
                    # (CRC or zstd error): keep everything before it.
                    return
                if isinstance(rec, Header):
                    header = rec
                elif isinstance(rec, Channel) and rec.message_encoding == MESSAGE_ENCODING:
                    channels[rec.id] = rec.topic  # derived channels (Foxglove, ROS 2) are not bus messages
                elif isinstance(rec, Message):
                    topic = channels.get(rec.channel_id)
                    if topic is None or not topic.startswith(prefix):
                        continue
                    try:
                        frames = schema.unpack_frames(rec.data)
                    except schema.DecodeError:
                        self.skipped += 1
                        continue
                    yield Record(topic, rec.log_time, rec.publish_time, [topic.encode(), *frames])
                elif isinstance(rec, Metadata) and rec.name == METADATA_NAME:
                    self.metadata = dict(rec.metadata)
                elif isinstance(rec, Footer):
                    self.truncated = False
