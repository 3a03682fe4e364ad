#!/usr/bin/env bash
# Set up (if needed) and run the demo: generated building, map database, bag replay through the
# scene_recognizer node over ROS 2, printed result. Extra arguments go to 'crossover_ros demo'.
set -euo pipefail
repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${repo_dir}/scripts/setup.sh"
# shellcheck disable=SC1091
source "${repo_dir}/scripts/env.sh"
cd "${repo_dir}"
crossover_ros demo "$@"
