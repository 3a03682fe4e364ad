"""Record rooms into a map: `ros2 launch crossover_ros record_map.launch.py map:=... scene_id:=...`.

Call `ros2 service call /map_recorder/save_scene std_srvs/srv/Trigger` at the end of each room
(set scene.id/scene.room_id for the next one with `ros2 param set`); stopping the node saves too.
"""

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
            DeclareLaunchArgument("map", description="map database file (created if missing)"),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="namespace of the node and its topics (one per robot)",
            ),
            DeclareLaunchArgument("scene_id", default_value="", description="first scene's id"),
            DeclareLaunchArgument("building_id", default_value="building", description="building"),
            DeclareLaunchArgument(
                "params_file",
                default_value=str(config / "map_recorder.yaml"),
                description="map_recorder parameters",
            ),
            LifecycleNode(
                package="crossover_ros",
                executable="map_recorder",
                name="map_recorder",
                namespace=LaunchConfiguration("namespace"),
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "map.path": LaunchConfiguration("map"),
                        "scene.id": LaunchConfiguration("scene_id"),
                        "scene.building_id": LaunchConfiguration("building_id"),
                    },
                ],
            ),
        ]
    )
