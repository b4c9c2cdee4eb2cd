"""ROS-free core: nothing under this package may import rclpy or ROS message modules."""
