"""Executables: each module has a node class and a ``main()`` for ``ros2 run``."""
