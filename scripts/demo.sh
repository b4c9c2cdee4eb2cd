#!/usr/bin/env bash
# Sets up (scripts/setup.sh, fast when nothing changed) and runs the simulated SO-101 teleop
# graph: scripted leader -> teleop -> safety watchdog -> MuJoCo follower, and a rendered camera.
# Prints tracking error, camera rate and watchdog state every second; Ctrl-C stops it.
# Extra arguments go to the demo, e.g. `--duration 20` for a verdict after 20 s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
. ./env.sh
exec python -m lerobot_ros.demo "$@"
