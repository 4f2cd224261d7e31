"""Bridges from the bus to where users already work: ROS 2 (``ros2``), Foxglove (``foxglove``) and a
browser dashboard (``dashboard``). Bus clients only: they subscribe to frames and emotion events and
never import torch or ``bodytalk.model``. Each integration's library is an optional extra, imported
when the bridge starts (``extras.need``)."""
