"""Parameter overrides a node does not have are named in a warning, not silently dropped."""

from rclpy.node import Node
from rclpy.parameter import Parameter

from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.ros.params import declare_tree, read_tree, warn_undeclared


def test_a_misspelt_override_is_named_and_a_declared_one_is_applied(ros_context):
    overrides = [
        Parameter("verification.top_k", value=3),
        Parameter("verification.topk", value=0),  # the typo a user makes
    ]
    node = Node("params_test", context=ros_context, parameter_overrides=overrides)
    try:
        declare_tree(node, PipelineCfg)
        assert warn_undeclared(node) == ["verification.topk"]
        assert read_tree(node, PipelineCfg).verification.top_k == 3
    finally:
        node.destroy_node()


def test_no_warning_when_every_override_is_declared(ros_context):
    node = Node(
        "params_test",
        context=ros_context,
        parameter_overrides=[Parameter("recognizer.window_size", value=4)],
    )
    try:
        declare_tree(node, PipelineCfg)
        assert warn_undeclared(node) == []
    finally:
        node.destroy_node()
