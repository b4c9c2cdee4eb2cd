"""lerobot_ros: the LeRobot workflow as ROS 2 nodes.

`lerobot_ros.core` is ROS-free (devices, safety, simulation, graph description); the thin ROS
wrappers live in `lerobot_ros.nodes`.
"""

__version__ = "0.1.0"
