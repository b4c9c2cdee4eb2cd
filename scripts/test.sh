#!/usr/bin/env bash
# Sets up (scripts/setup.sh, fast when nothing changed) and runs lint + the whole test suite.
# Every ROS test runs on loopback only, in its own ROS_DOMAIN_ID (test/conftest.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
. ./env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# Missing ROS pieces must fail here, not skip (only launch_ros, absent without ROS 2, may skip).
export LEROBOT_ROS_REQUIRE_ROS=1
echo "[test] ruff"
ruff check .
ruff format --check .
echo "[test] pytest"
python -m pytest "$@"
