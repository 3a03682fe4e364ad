"""Executables: each module has a node class and a ``main()`` for ``ros2 run``."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin(make_node: Callable[[], Node], args: list[str] | None, last: str = "") -> None:
    """``ros2 run``'s life of a node: init, spin until Ctrl-C or shutdown, then the node's
    ``last`` method (if named: e.g. save what was recorded), destroy, shut down."""
    rclpy.init(args=args)
    node = make_node()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if last:
            getattr(node, last)()
        node.destroy_node()
        rclpy.try_shutdown()
