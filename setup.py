"""ament_python build of lerobot_ros: one console script per node, data files under share/."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lerobot_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="lerobot_ros maintainers",
    maintainer_email="maintainers@lerobot-ros.invalid",
    description="LeRobot workflow as ROS 2 nodes",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "follower = lerobot_ros.nodes.arm:main_follower",
            "leader = lerobot_ros.nodes.arm:main_leader",
            "camera = lerobot_ros.nodes.camera:main",
            "realsense = lerobot_ros.nodes.realsense:main",
            "lerobot_ros_calibrate = lerobot_ros.core.hardware.calibrate:main",
            "lerobot_ros_convert = lerobot_ros.core.dataset.cli:main",
            "lerobot_ros_eval = lerobot_ros.core.sim.evaluate:main",
            "teleop = lerobot_ros.nodes.teleop:main",
            "ee_teleop = lerobot_ros.nodes.ee_teleop:main",
            "visualizer = lerobot_ros.nodes.visualizer:main",
            "watchdog = lerobot_ros.nodes.watchdog:main",
            "container = lerobot_ros.nodes.container:main",
            "chunk_player = lerobot_ros.nodes.chunk_player:main",
            "policy_runner = lerobot_ros.nodes.policy_runner:main",
            "train = lerobot_ros.core.training.cli:main",
            "recorder = lerobot_ros.nodes.recorder:main",
            "rollout = lerobot_ros.nodes.rollout:main",
            "episode_keys = lerobot_ros.nodes.episode_keys:main",
            "sim_demo = lerobot_ros.demo:main",
            "sim_expert = lerobot_ros.nodes.sim_expert:main",
            "lerobot_ros_closed_loop = lerobot_ros.closed_loop:main",
        ],
    },
)
