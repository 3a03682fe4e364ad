"""bag_player imports the message module a bag names only for installed ROS interface packages."""

import sys

import pytest

from crossover_ros.errors import BagError
from crossover_ros.ros.nodes.bag_player import is_interface_package, message_class


def test_installed_interfaces_are_imported():
    from sensor_msgs.msg import Image

    assert message_class("sensor_msgs/msg/Image") is Image
    assert is_interface_package("crossover_msgs") and is_interface_package("std_msgs")


@pytest.mark.parametrize(
    "msgtype",
    ["evil_pkg/msg/Image", "os/msg/system", "evil_pkg.msg/msg/X", "../x/msg/Y", "a/b/c/d"],
)
def test_a_bag_naming_another_module_does_not_get_it_imported(tmp_path, monkeypatch, msgtype):
    package = tmp_path / "evil_pkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text("")
    (package / "msg.py").write_text(f"open({str(marker)!r}, 'w').close()\nImage = object\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BagError):
        message_class(msgtype)
    assert not marker.exists() and "evil_pkg.msg" not in sys.modules
