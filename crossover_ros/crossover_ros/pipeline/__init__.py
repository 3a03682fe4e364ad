"""The recognition pipeline the ROS node wraps: synchronised frames in, scene matches out."""
