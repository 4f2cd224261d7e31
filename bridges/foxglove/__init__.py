"""Foxglove: ``scene`` turns bus messages into Foxglove messages, ``live`` serves them to the
Foxglove app (``bodytalk foxglove``), ``export`` writes sessions with Foxglove or ROS 2 channels."""
