#!/usr/bin/env bash
# Build crossover_msgs with plain CMake and install it into a Python virtual environment that
# holds ROS 2 Jazzy from the PyPI wheels, so `from crossover_msgs.msg import SceneMatch` works
# there without a ROS install or colcon. Safe to run again: it reuses the build directory.
#
# Usage: scripts/build_msgs.sh VENV_DIR [BUILD_DIR]
#   BUILD_DIR defaults to <repo>/build/crossover_msgs_venv (gitignored).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 VENV_DIR [BUILD_DIR]" >&2
  exit 2
fi

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="$(cd "$1" && pwd)"
build_dir="${2:-${repo_dir}/build/crossover_msgs_venv}"
src_dir="${repo_dir}/crossover_msgs"
python="${venv_dir}/bin/python"
# Drops the wheels' dangling /opt/python/... include dirs; see the file's header.
workaround="${src_dir}/cmake/pypi_wheels_workaround.cmake"

if [[ ! -x "${python}" ]]; then
  echo "ERROR: ${python} not found; is ${venv_dir} a virtual environment?" >&2
  exit 1
fi

# Install the Python package exactly where this interpreter looks (venv site-packages),
# relative to the prefix as ament_cmake_python expects.
python_install_dir="$("${python}" -c 'import os, sys, sysconfig
print(os.path.relpath(sysconfig.get_path("purelib"), sys.prefix))')"

# A build dir configured for another venv or source tree must not be reused.
cache="${build_dir}/CMakeCache.txt"
if [[ -f "${cache}" ]] && ! grep -qx "CMAKE_INSTALL_PREFIX:PATH=${venv_dir}" "${cache}"; then
  echo "build dir ${build_dir} was configured for another prefix; starting afresh"
  rm -rf "${build_dir}"
fi

export AMENT_PREFIX_PATH="${venv_dir}${AMENT_PREFIX_PATH:+:${AMENT_PREFIX_PATH}}"
export CMAKE_PREFIX_PATH="${venv_dir}${CMAKE_PREFIX_PATH:+:${CMAKE_PREFIX_PATH}}"
# The generators are Python modules from the wheels; run them with the venv's interpreter.
export PATH="${venv_dir}/bin:${PATH}"

log="$(mktemp -t crossover_msgs_build.XXXXXX.log)"
# Quiet unless something fails: then the whole CMake log is shown.
if ! {
  cmake -S "${src_dir}" -B "${build_dir}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="${venv_dir}" \
    -DCMAKE_INSTALL_PREFIX="${venv_dir}" \
    -DPython3_EXECUTABLE="${python}" \
    -DPYTHON_EXECUTABLE="${python}" \
    -DPYTHON_INSTALL_DIR="${python_install_dir}" \
    -DBUILD_TESTING=OFF \
    -DCMAKE_PROJECT_INCLUDE="${workaround}" &&
    cmake --build "${build_dir}" --parallel "$(nproc)" &&
    cmake --install "${build_dir}"
} >"${log}" 2>&1; then
  cat "${log}" >&2
  echo "ERROR: building crossover_msgs failed (log above, also in ${log})" >&2
  exit 1
fi
rm -f "${log}"

AMENT_PREFIX_PATH="${venv_dir}" "${python}" -c \
  'from crossover_msgs.msg import SceneMatch; print("crossover_msgs OK:", SceneMatch())' >/dev/null
echo "crossover_msgs installed into ${venv_dir}"
