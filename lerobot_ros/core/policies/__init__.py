"""Policies, ROS-free: the chunk-policy interface, normalization, checkpoints, ACT."""
