"""Where the package's data files (urdf/, config/, launch/) are, with or without ROS installed."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "lerobot_ros"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_dir() -> Path:
    """share/lerobot_ros of the install, or the source tree when running from a checkout."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            return Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return _SOURCE_ROOT


def resolve(path: str) -> Path:
    """Resolve `package://lerobot_ros/x`, a share-relative path (`urdf/so101.urdf`) or a path."""
    prefix = f"package://{PACKAGE}/"
    if path.startswith(prefix):
        return share_dir() / path[len(prefix) :]
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return p
    shared = share_dir() / p
    # Our own data files (urdf/so101.urdf, config/...) win over a same-named file in the cwd.
    return shared if shared.exists() or not p.exists() else p
