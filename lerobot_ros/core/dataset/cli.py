"""`lerobot_ros_convert`: rosbag2 recordings -> LeRobotDataset v3.0 (no ROS needed).

    lerobot_ros_convert BAG [BAG...] --output DIR --repo-id NAME --fps 30
        [--action command|leader] [--action-policy hold|linear|nearest]
        [--vcodec libsvtav1|h264] [--max-gap 0.2] [--robot so101] [--intervention auto|on|off]
        [--push-to-hub [--private]]

Exit code 0 when at least one episode converted, 1 when none did, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lerobot_ros.core.dataset.bag import BagError
from lerobot_ros.core.dataset.convert import ACTION_SOURCES, convert_bags
from lerobot_ros.core.dataset.profile import get_profile
from lerobot_ros.core.dataset.resample import POLICIES
from lerobot_ros.core.dataset.writer import CODECS


def push_to_hub(root: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Upload the dataset folder to the Hub (dataset repo) and tag it with the codebase version
    (upstream's loader looks for that tag). huggingface_hub is imported only here."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise RuntimeError(
            "--push-to-hub needs huggingface_hub (pip install huggingface_hub)"
        ) from None
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="dataset")
    api.create_tag(repo_id, tag="v3.0", repo_type="dataset", exist_ok=True)
    return str(getattr(commit, "commit_url", commit))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lerobot_ros_convert",
        description="Convert rosbag2 recordings (MCAP or sqlite3) into a LeRobotDataset v3.0.",
    )
    p.add_argument("bags", nargs="+", help="bag directories or .mcap/.db3 files")
    p.add_argument("--output", required=True, help="dataset directory (must be new or empty)")
    p.add_argument("--repo-id", required=True, help="dataset name, e.g. user/so101_pick")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument(
        "--action",
        choices=ACTION_SOURCES,
        default="command",
        help="action source: /follower/command (default) or /leader/joint_states",
    )
    p.add_argument(
        "--action-policy",
        choices=POLICIES,
        default="hold",
        help="how actions are resampled (observations always use 'hold')",
    )
    p.add_argument("--vcodec", choices=sorted(CODECS), default="libsvtav1")
    p.add_argument(
        "--max-gap",
        type=float,
        default=0.2,
        help="largest time (s) a stream may go without a sample inside an episode",
    )
    p.add_argument("--robot", default="so101", help="dataset profile (so101, so100)")
    p.add_argument(
        "--intervention",
        choices=("auto", "on", "off"),
        default="auto",
        help="per-frame bool feature 'intervention' (frames a human drove, from the "
        "INTERVENTION_START/END events): auto = when any episode has such events, for all",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--push-to-hub", action="store_true")
    p.add_argument("--private", action="store_true", help="with --push-to-hub")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"error: {out} exists and is not an empty directory", file=sys.stderr)
        return 2
    try:
        profile = get_profile(args.robot)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t_start = time.monotonic()
    try:
        report = convert_bags(
            args.bags,
            out,
            args.repo_id,
            fps=args.fps,
            action=args.action,
            action_policy=args.action_policy,
            vcodec=args.vcodec,
            max_gap_s=args.max_gap,
            profile=profile,
            log=lambda m: print(m, flush=True),
            progress=not args.no_progress,
            intervention=args.intervention,
        )
    except (BagError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    conv = report.converted
    frames = sum(e.frames for e in conv)
    print(
        f"{len(conv)} of {len(report.episodes)} episodes converted, {frames} frames, "
        f"{time.monotonic() - t_start:.1f} s -> {out}"
    )
    for e in report.episodes:
        if e.status != "converted":
            print(f"  not converted: {e.message or e.name}")
    if not conv:
        print("error: no episode converted", file=sys.stderr)
        return 1
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(out, args.repo_id, private=args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
