"""Start scene_recognizer on a robot: `ros2 launch crossover_ros relocalize.launch.py map:=...`."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode


def generate_launch_description() -> LaunchDescription:
    config = Path(get_package_share_directory("crossover_ros")) / "config"
    return LaunchDescription(
        [
            DeclareLaunchArgument("map", description="map database file"),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="namespace of the node and its topics (one per robot)",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=str(config / "scene_recognizer.yaml"),
                description="scene_recognizer parameters",
            ),
            LifecycleNode(
                package="crossover_ros",
                executable="scene_recognizer",
                name="scene_recognizer",
                namespace=LaunchConfiguration("namespace"),
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {"map.path": LaunchConfiguration("map")},
                ],
            ),
        ]
    )
