"""Inference runtimes: graphs run by PyTorch, ONNX Runtime or TensorRT, behind one interface.

Why a separate layer: the model code in ``model/`` stays plain PyTorch (training needs it), while a
robot wants the fastest engine its hardware has. Modules, one concern each:

* ``graph``: a graph with named tensors, dynamic axes and a fingerprint (which model modules
  become graphs is ``model.graphs``).
* ``export``: ONNX files (atomic, ``onnx.checker``), parity with PyTorch, the on-demand cache.
* ``backends``: PyTorch, ONNX Runtime and TensorRT behind one ``run`` interface; ``auto``; a
  fallback to PyTorch for shapes an engine cannot take.
* ``engine_cache`` / ``tensorrt_engine``: TensorRT engines, cached under a full key, built and
  run through the TensorRT Python API (8.6 and 10).

No ROS import here, and no import of ``model/``; TensorRT is imported only when it is installed
and asked for.
"""
