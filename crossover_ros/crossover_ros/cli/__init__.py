"""The ``crossover_ros`` command line: one verb per module, each returning an exit code."""
