"""Recording, ROS-free: raw CDR messages into rosbag2 episode bags (see bag_writer)."""

from lerobot_ros.core.recording.bag_writer import (
    EVENT_TYPE,
    EpisodeBagWriter,
    EpisodeInfo,
    TopicStats,
    TypeRegistry,
    UnknownTypeError,
    episode_status,
    header_stamp_ns,
    read_episode,
)
from lerobot_ros.core.recording.ring import HighlightError, HighlightRing, RingEntry, Selection

__all__ = [
    "EVENT_TYPE",
    "EpisodeBagWriter",
    "EpisodeInfo",
    "HighlightError",
    "HighlightRing",
    "RingEntry",
    "Selection",
    "TopicStats",
    "TypeRegistry",
    "UnknownTypeError",
    "episode_status",
    "header_stamp_ns",
    "read_episode",
]
