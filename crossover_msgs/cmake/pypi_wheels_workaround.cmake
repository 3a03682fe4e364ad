# Development-only workaround for building against the ROS 2 PyPI wheels (ros-jazzy-* on PyPI).
#
# NOT used by CMakeLists.txt: a normal ROS install (apt, source) does not need it. It is injected
# from outside with -DCMAKE_PROJECT_INCLUDE=<this file>, by scripts/build_msgs.sh or by
#   colcon build --cmake-args -DCMAKE_PROJECT_INCLUDE=<this file>
#
# Why: the wheels were built in a manylinux container, so their exported
# <pkg>__rosidl_generator_py targets list include directories such as
# /opt/python/cp311-cp311/include/python3.11 that do not exist on this machine. CMake refuses to
# generate when an imported target names a missing include directory. We have our own Python and
# NumPy include paths from find_package(Python3), so we drop the missing entries.

if(NOT COMMAND _crossover_drop_missing_include_dirs)
  function(_crossover_drop_missing_include_dirs)
    get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
    foreach(_target IN LISTS _targets)
      get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(NOT _dirs)
        continue()
      endif()
      set(_kept "")
      set(_changed FALSE)
      foreach(_dir IN LISTS _dirs)
        # Keep generator expressions and relative entries: they cannot be checked here.
        if(_dir MATCHES "^\\$<" OR NOT IS_ABSOLUTE "${_dir}" OR EXISTS "${_dir}")
          list(APPEND _kept "${_dir}")
        else()
          set(_changed TRUE)
        endif()
      endforeach()
      if(_changed)
        message(STATUS "crossover workaround: dropped missing include dirs of ${_target}")
        set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
      endif()
    endforeach()
  endfunction()
endif()

# Run after the top-level CMakeLists.txt has called every find_package(), before generation.
if(CMAKE_CURRENT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR)
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _crossover_drop_missing_include_dirs)
endif()
