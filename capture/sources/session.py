"""``session:FILE.mcap``: the skeleton frames of a recorded session, as a source.

Reads the ``skeleton.frame.<sensor>`` messages of a session written by ``bodytalk record`` and
yields them as frames (capture time, body ids, joints, confidence exactly as recorded), so a
recorded session can be re-windowed, re-analysed or used for training like any file source.
The layout comes from the messages' layout id; BVH rig layouts are registered only when their
BVH file is read, so a session of a BVH source needs that rig loaded in the same process.

Options: ``?sensor=NAME`` picks one sensor when the session holds several (default: the first
one recorded); it is also the sensor name the frames are republished under.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from bodytalk.capture import layouts
from bodytalk.capture.source import Frame, Source, SourceError
from bodytalk.stream import schema, topics
from bodytalk.stream.session_file import SessionFileError, SessionReader

FPS_PROBE = 30  # frames whose capture-time spacing sets the native rate


class SessionSource(Source):
    scheme = "session"
    help = "skeleton frames of a session recorded with `bodytalk record` (?sensor=NAME)"
    example = "session:session.mcap?sensor=kinect0"

    def __init__(self, target: str, options: dict[str, str]) -> None:
        super().__init__(target, options)
        self._recorded_sensor: str | None = None
        self.skipped = 0  # frame messages that failed to decode

    @property
    def sensor(self) -> str:
        return self._recorded_sensor or self.options.get("sensor", self.scheme)

    def open(self) -> None:
        try:
            self._reader = SessionReader(self.target)
        except SessionFileError as err:
            raise SourceError(f"session: {err}") from None
        wanted = self.options.get("sensor")
        seen: list[str] = []
        times: list[float] = []
        for msg in self._frame_messages(prefix=topics.FRAME):
            if msg.sensor not in seen:
                seen.append(msg.sensor)
            if wanted is None:
                wanted = msg.sensor
            if msg.sensor != wanted:
                continue
            if not times:
                self.layout = self._layout(msg.layout)
            times.append(msg.t_capture)
            if len(times) > FPS_PROBE:
                break
        if not times:
            if seen:
                raise SourceError(f"session: no frames of sensor {wanted!r} in {self.target}; it "
                                  f"holds {', '.join(seen)} (pick one with ?sensor=NAME)")
            raise SourceError(f"session: {self.target} holds no skeleton.frame.* messages; record "
                              f"the capture's frames (`bodytalk record --topic skeleton.`)")
        self._recorded_sensor = wanted
        steps = np.diff(times)
        steps = steps[steps > 0]
        self.fps = float(1.0 / np.median(steps)) if len(steps) else 30.0

    def frames(self) -> Iterator[Frame]:
        for msg in self._frame_messages(prefix=topics.frame(self.sensor)):
            if msg.sensor != self._recorded_sensor:
                continue  # prefix "skeleton.frame.k1" also matches "skeleton.frame.k10"
            if msg.layout != self.layout.id:
                raise SourceError(f"session: sensor {msg.sensor} switches layout from "
                                  f"{self.layout.id} to {msg.layout} at frame {msg.seq}; one "
                                  f"source has one layout")
            yield Frame(t=msg.t_capture, body_ids=msg.body_ids, joints=msg.joints,
                        confidence=msg.confidence)

    def _frame_messages(self, prefix: str) -> Iterator[schema.SkeletonFrame]:
        for rec in self._reader.records(prefix):
            try:
                msg, _ = schema.decode(rec.frames)
            except schema.DecodeError:
                self.skipped += 1
                continue
            if isinstance(msg, schema.SkeletonFrame):
                yield msg

    @staticmethod
    def _layout(layout_id: str) -> layouts.Layout:
        try:
            return layouts.get(layout_id)
        except KeyError as err:
            raise SourceError(f"session: {err.args[0]}; a BVH rig layout needs its BVH file "
                              f"opened first") from None
