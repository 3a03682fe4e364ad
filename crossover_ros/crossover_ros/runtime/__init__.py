"""Inference runtimes: the encoders as ONNX graphs, run by PyTorch, ONNX Runtime or TensorRT.

Why a separate layer: the model code in ``model/`` stays plain PyTorch (training needs it), while a
robot wants the fastest engine its hardware has. Modules, one concern each:

* ``names``: the graph names (no torch import, for the CLI).
* ``graphs``: each inference encoder as a graph with named tensors, dynamic axes, fingerprint.
* ``export``: ONNX files (atomic, ``onnx.checker``), parity with PyTorch, the on-demand cache.
* ``backends``: PyTorch, ONNX Runtime and TensorRT behind one ``run`` interface; ``auto``.
* ``engine_cache`` / ``tensorrt_engine``: TensorRT engines, cached under a full key, built and
  run through the TensorRT Python API (8.6 and 10).
* ``adapters``: drop-in image encoder for ``pipeline/encoders.py``.

No ROS import here; TensorRT is imported only when it is installed and asked for. Submodules are
imported where used, so importing this package stays cheap.
"""

from crossover_ros.runtime.names import GRAPH_NAMES

__all__ = ["GRAPH_NAMES"]
