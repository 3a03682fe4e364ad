# Source this (bash): the venv and the ROS 2 environment a ROS install's setup.bash would give.
_crossover_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_crossover_venv="${CROSSOVER_VENV:-${_crossover_repo}/.venv}"
# shellcheck disable=SC1091
source "${_crossover_venv}/bin/activate"
export AMENT_PREFIX_PATH="${_crossover_venv}${AMENT_PREFIX_PATH:+:${AMENT_PREFIX_PATH}}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$(mktemp -d -t roslog.XXXXXX)}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Shared memory + loopback UDP: large images are not dropped between local processes.
export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-${_crossover_repo}/crossover_ros/config/fastdds.xml}"
unset _crossover_repo _crossover_venv
