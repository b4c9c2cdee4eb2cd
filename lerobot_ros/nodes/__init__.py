"""Thin ROS 2 wrappers around the ROS-free core: parameters, topics, services, timers."""
