"""6-DoF pose of a query window in a matched scene (issue 8): plain Python, no ROS import."""

from crossover_ros.pose.estimate import (
    NoPose,
    PoseCfg,
    PoseEstimate,
    PoseEstimator,
    SceneCache,
    estimate_pose,
)

__all__ = ["NoPose", "PoseCfg", "PoseEstimate", "PoseEstimator", "SceneCache", "estimate_pose"]
