"""CrossOver scene recognition for ROS 2: recognise which known room a robot is in."""

__version__ = "0.1.0"
