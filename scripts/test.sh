#!/usr/bin/env bash
# Set up (if needed), then lint and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${repo_dir}/scripts/setup.sh"
# shellcheck disable=SC1091
source "${repo_dir}/scripts/env.sh"
# A domain of its own, so a demo or another test run on this machine does not cross-talk.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((100 + RANDOM % 100))}"
cd "${repo_dir}"
echo "== ruff"
ruff check crossover_ros
ruff format --check crossover_ros
echo "== pytest"
python -m pytest "$@"
