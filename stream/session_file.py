"""Session files: the exact bus messages with their receive times, in MCAP.

Layout of a session file (readable by any MCAP tool, e.g. ``mcap info``, Foxglove):
  - one channel per bus topic (channel topic = bus topic), no MCAP schema, message encoding
    ``bodytalk-multipart/msgpack``;
  - message data = ``schema.pack_frames(frames[1:])``: the frames after the topic, byte for byte;
  - MCAP channel ids are 16-bit. Past ``EXACT_CHANNELS`` distinct topics (a Kinect that runs for
    days never reuses a body id; a flood of made-up topics), a new topic goes to its family's
    channel (``skeleton.window.kinect0.*``: the topic without its last segment), and past 65,534
    channels to one ``*`` channel. Those channels have the encoding
    ``bodytalk-multipart/msgpack+topic`` and carry ``pack_frames(frames)`` with the exact topic
    first, so every message keeps its exact topic and the recording never stops;
  - ``log_time`` = receive wall clock (ns); ``publish_time`` = the same (the sender's ``ts`` stays
    inside the payload, so recording never has to decode); ``sequence`` = the recorder's receive
    counter, so file order is receive order;
  - a ``bodytalk`` metadata record (what was recorded, from where);
  - optionally, derived channels for other tools (``add``: Foxglove schemas, ROS 2 messages) next
    to the bus channels; the reader skips them, so the session still replays unchanged. When
    channel ids run short they are dropped (``derived_dropped``): the bus channels keep the ids;

Crash safety: chunks are small and the writer closes the open chunk at least every
``flush_every`` seconds (``Writer.flush``), so a ``kill -9`` loses at most that much. A write that
fails (a full disk) raises one SessionFileError and leaves the file readable up to the last chunk.
The reader scans records sequentially instead of trusting the summary, so a finished file and one
cut off mid-record (no footer, no summary) read the same way; ``truncated`` tells them apart. A
damaged chunk (its CRC or its compression fails: one flipped byte) is skipped and counted
(``lost_chunks``, and ``lost_messages`` from the message index that follows it); reading goes on
at the next chunk, found by scanning when the damage hit the chunk's own length field.
"""
from __future__ import annotations

import io
import mmap
import os
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Iterator

from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Footer, Message, MessageIndex, Metadata
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap.writer import CompressionType, Writer

from bodytalk import __version__
from bodytalk.stream import schema

MESSAGE_ENCODING = "bodytalk-multipart/msgpack"
TOPIC_ENCODING = "bodytalk-multipart/msgpack+topic"   # shared channels: the exact topic is frame 0
MAX_CHANNELS = 65_535          # MCAP channel ids are uint16 (0 is not used)
EXACT_CHANNELS = 64_000        # then family channels, then one "*" channel
_MAGIC = b"\x89MCAP0\r\n"
_ERRORS = (McapError, struct.error, ValueError, EOFError, zlib.error, IndexError, UnicodeDecodeError)
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
    """Appends bus messages to a new MCAP session file; ``close()`` writes the index and summary.

    A failed write (ENOSPC, a file-size limit) raises SessionFileError once; the file is then
    closed without its summary and reads back as truncated, holding every flushed chunk."""

    def __init__(self, path: str | os.PathLike, metadata: dict[str, str] | None = None,
                 flush_every: float = 0.25, chunk_size: int = 256 * 1024,
                 clock=time.monotonic, exact_channels: int = EXACT_CHANNELS) -> None:
        if flush_every <= 0:
            raise ValueError("flush_every must be > 0 seconds")
        self.path = os.fspath(path)
        self.failed: str | None = None
        try:
            self._file = open(self.path, "wb")
        except OSError as err:
            raise SessionFileError(f"cannot create session file {self.path}: {err.strerror}") from None
        self._channels: dict[str, int] = {}   # exact topic or family ("a.b.*", "*") -> channel id
        self.exact_channels = min(exact_channels, MAX_CHANNELS - 1)
        self._derived: dict[tuple, int] = {}  # (topic, encoding, schema) -> channel of a derived message
        self._schemas: dict[str, int] = {}   # schema name -> id
        self.derived = self.derived_dropped = 0
        self.counts: dict[str, int] = {}   # topic -> messages written
        self.count = 0
        self.flush_every, self._clock = flush_every, clock
        self._last_flush = clock()
        # zstd chunks: windows compress well; a chunk closes at chunk_size or on the flush timer.
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        with self._io():
            self._writer.start(profile=PROFILE, library=f"bodytalk {__version__}")
            self._writer.add_metadata(METADATA_NAME, {"version": __version__, **(metadata or {})})
            self._writer.flush()  # header on disk at once: even an instant crash leaves an MCAP file

    def _io(self):
        return _Failing(self)

    def _channel(self, topic: str) -> tuple[int, bool]:
        """(channel id, whether the channel is shared and the payload carries the topic)."""
        channel = self._channels.get(topic)
        if channel is not None:
            return channel, False
        n = self._channel_count()
        if n < self.exact_channels:
            key, encoding = topic, MESSAGE_ENCODING
        else:
            family = topic.rsplit(".", 1)[0] + ".*" if "." in topic else "*"
            key = family if family in self._channels or n < MAX_CHANNELS - 1 else "*"
            encoding = TOPIC_ENCODING
        channel = self._channels.get(key)
        if channel is None:
            channel = self._writer.register_channel(topic=key, message_encoding=encoding, schema_id=0)
            self._channels[key] = channel
        return channel, key != topic

    def write(self, frames: list[bytes], log_time: int | None = None) -> None:
        """Append one bus message ``[topic, *frames]``, received at ``log_time`` ns (default now)."""
        if len(frames) < 1:
            raise ValueError("a bus message has at least a topic frame")
        topic = bytes(frames[0]).decode("utf-8", errors="replace")
        now = time.time_ns() if log_time is None else log_time
        with self._io():
            channel, shared = self._channel(topic)
            self._writer.add_message(channel, log_time=now, publish_time=now, sequence=self.count,
                                     data=schema.pack_frames(frames if shared else frames[1:]))
        self.count += 1
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.tick()

    def add(self, topic: str, message_encoding: str, data: bytes, log_time: int,
            schema: tuple[str, str, bytes] | None = None) -> None:
        """Append a derived message (not a bus message) on its own channel; ``schema`` is
        ``(name, encoding, data)`` (None: a schemaless channel, e.g. JSON)."""
        key = (topic, message_encoding, schema[0] if schema else None)  # a topic may carry two kinds
        channel = self._derived.get(key)
        if channel is None and self._channel_count() >= self.exact_channels:
            self.derived_dropped += 1   # channel ids run short: the bus channels keep them (a derived
            return                      # message is a copy for other tools; its bus message is recorded)
        with self._io():
            if channel is None:
                schema_id = 0
                if schema is not None:
                    schema_id = self._schemas.get(schema[0]) or self._writer.register_schema(*schema)
                    self._schemas[schema[0]] = schema_id
                channel = self._derived[key] = self._writer.register_channel(
                    topic=topic, message_encoding=message_encoding, schema_id=schema_id)
            self._writer.add_message(channel, log_time=log_time, publish_time=log_time, data=data)
        self.derived += 1

    def _channel_count(self) -> int:
        return len(self._channels) + len(self._derived)

    def tick(self) -> bool:
        """Flush the open chunk if ``flush_every`` has passed; call it when idle too."""
        now = self._clock()
        if now - self._last_flush < self.flush_every:
            return False
        with self._io():
            self._writer.flush()
        self._last_flush = now
        return True

    def close(self) -> None:
        """Write the last chunk, indexes and summary, and close the file."""
        if self._file.closed:
            return
        if self.failed is None:
            try:
                with self._io():
                    self._writer.finish()
            finally:
                self._close_file()
        self._close_file()

    def _close_file(self) -> None:
        try:
            self._file.close()
        except OSError:  # the buffered tail cannot be written either: what is on disk stays readable
            pass

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Failing:
    """Turns the first OSError of a write into one SessionFileError; later writes refuse at once."""

    def __init__(self, w: SessionWriter) -> None:
        self.w = w

    def __enter__(self) -> None:
        if self.w.failed is not None:
            raise SessionFileError(self.w.failed)

    def __exit__(self, kind, err, tb) -> bool:
        if isinstance(err, OSError):
            self.w.failed = (f"cannot write {self.w.path}: {err.strerror or err} after {self.w.count} "
                             "messages; the file is readable up to the last flushed chunk")
            self.w._close_file()
            raise SessionFileError(self.w.failed) from None
        return False


class SessionReader:
    """Reads a session file in file (= receive) order, recovering a truncated or damaged one.

    After ``records()`` is exhausted: ``truncated`` is True when the file ended before its footer
    (a crashed recorder); ``skipped`` counts messages whose payload was not a frame list;
    ``lost_chunks`` the damaged chunks skipped and ``lost_messages`` the messages they held (as
    far as the message index after each tells).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise SessionFileError(f"no session file at {self.path}; record one with `bodytalk record`")
        self.size = os.path.getsize(self.path)
        self.metadata: dict[str, str] = {}
        self.truncated = False
        self.skipped = self.lost_chunks = self.lost_messages = 0

    def records(self, prefix: str = "") -> Iterator[Record]:
        """Every message whose topic starts with ``prefix``."""
        self.truncated, self.skipped, self.lost_chunks, self.lost_messages = True, 0, 0, 0
        with open(self.path, "rb") as f:
            if self.size < len(_MAGIC) + 9 or f.read(len(_MAGIC)) != _MAGIC:
                raise SessionFileError(f"{self.path} is not an MCAP session file (no MCAP magic)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                yield from self._scan(data, prefix)

    def _scan(self, data, prefix: str) -> Iterator[Record]:
        channels = _summary_channels(data)   # a chunk that defined channels may be the damaged one
        pos = len(_MAGIC)
        while pos + 9 <= len(data):
            opcode, length = data[pos], int.from_bytes(data[pos + 1:pos + 9], "little")
            end = pos + 9 + length
            try:
                if end > len(data) or opcode not in _OPCODES:
                    raise ValueError("bad record framing")
                if opcode == Opcode.CHUNK:
                    recs = breakup_chunk(Chunk.read(_stream(data[pos + 9:end])), validate_crc=True)
                elif opcode == Opcode.MESSAGE_INDEX:
                    recs = []
                elif opcode == Opcode.FOOTER:   # (StreamReader would look for the magic after it)
                    recs = [Footer.read(_stream(data[pos + 9:end]))]
                elif opcode == Opcode.DATA_END and _has_footer(data):
                    self.truncated = False   # only the summary follows: its channels were read already
                    return
                else:
                    recs = [next(StreamReader(io.BytesIO(data[pos:end]), skip_magic=True).records)]
            except (*_ERRORS, StopIteration):
                pos = self._resync(data, pos, end)
                if pos is None:
                    return
                continue
            for rec in recs:
                if isinstance(rec, Channel):
                    channels[rec.id] = rec
                elif isinstance(rec, Message):
                    out = self._record(rec, channels.get(rec.channel_id), prefix)
                    if out is not None:
                        yield out
                elif isinstance(rec, Metadata) and rec.name == METADATA_NAME:
                    self.metadata = dict(rec.metadata)
                elif isinstance(rec, Footer):
                    self.truncated = False
                    return
            pos = end

    def _resync(self, data, pos: int, end: int) -> int | None:
        """Where reading goes on after the damaged record at ``pos`` (None: nothing readable after)."""
        if end <= len(data):   # its length field is intact: the message index after it counts the loss
            q, lost = end, 0
            while q + 9 <= len(data) and data[q] == Opcode.MESSAGE_INDEX:
                nxt = q + 9 + int.from_bytes(data[q + 1:q + 9], "little")
                try:
                    lost += len(MessageIndex.read(_stream(data[q + 9:nxt])).records)
                except _ERRORS:
                    break
                q = nxt
            if q + 9 <= len(data) and data[q] in (Opcode.CHUNK, Opcode.DATA_END):
                self.lost_chunks += 1
                self.lost_messages += lost
                return q
        nxt = _next_chunk(data, pos + 1)
        if nxt is not None or end <= len(data):
            self.lost_chunks += 1   # damaged framing: found the next good chunk by scanning
        return nxt  # None and end past the file: a tail cut off mid-record (a killed recorder)

    def _record(self, rec: Message, channel: Channel | None, prefix: str) -> Record | None:
        if channel is None:
            self.skipped += 1   # its channel was defined in a damaged chunk
            return None
        if channel.message_encoding not in (MESSAGE_ENCODING, TOPIC_ENCODING):
            return None   # a derived channel (Foxglove, ROS 2) is not a bus message
        shared = channel.message_encoding == TOPIC_ENCODING
        if not shared and not channel.topic.startswith(prefix):
            return None
        try:
            frames = schema.unpack_frames(rec.data)
            topic = bytes(frames[0]).decode("utf-8", errors="replace") if shared else channel.topic
        except (schema.DecodeError, IndexError):
            self.skipped += 1
            return None
        if not topic.startswith(prefix):
            return None
        return Record(topic, rec.log_time, rec.publish_time, frames if shared else [topic.encode(), *frames])


_OPCODES = {int(o) for o in Opcode}


def _stream(buf) -> ReadDataStream:
    return ReadDataStream(io.BytesIO(buf))


def _next_chunk(data, start: int) -> int | None:
    """Offset of the next chunk record that reads back with a good CRC, or None."""
    pos = data.find(bytes([Opcode.CHUNK]), start)
    while pos != -1:
        length = int.from_bytes(data[pos + 1:pos + 9], "little")
        if pos + 9 + length <= len(data):
            try:
                breakup_chunk(Chunk.read(_stream(data[pos + 9:pos + 9 + length])), validate_crc=True)
                return pos
            except _ERRORS:
                pass
        pos = data.find(bytes([Opcode.CHUNK]), pos + 1)
    return None


def _has_footer(data) -> bool:
    at = len(data) - len(_MAGIC) - 29
    return at > 0 and data[at] == Opcode.FOOTER and data[-len(_MAGIC):] == _MAGIC


def _summary_channels(data) -> dict[int, Channel]:
    """The channels listed in a finished file's summary section ({} when absent or damaged)."""
    footer_at = len(data) - len(_MAGIC) - 29   # a footer record is 1 + 8 + 20 bytes
    out: dict[int, Channel] = {}
    try:
        footer = Footer.read(_stream(data[footer_at + 9:footer_at + 29]))
        if data[footer_at] != Opcode.FOOTER or not 0 < footer.summary_start < footer_at:
            return out
        for rec in StreamReader(io.BytesIO(data[footer.summary_start:footer_at]), skip_magic=True).records:
            if isinstance(rec, Channel):
                out[rec.id] = rec
    except _ERRORS:   # the end of the summary reads as a cut record; a damaged one ends the list
        pass
    return out
