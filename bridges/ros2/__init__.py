"""ROS 2 on the DDS wire (REP-155 / ROS4HRI) without a ROS installation: ``messages`` builds the ROS
messages with the ``rosbags`` typestore, ``dds`` publishes them with ``cyclonedds``, ``bridge`` is the
``bodytalk ros2`` process."""
