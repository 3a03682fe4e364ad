"""Inference runtimes: ONNX export and parity, backend choice, the TensorRT engine cache.

Parity is measured on the shipped checkpoint and the real EfficientNet-Lite0 / MiniLM weights.
TensorRT itself runs only where it is installed with a CUDA GPU (those tests skip here, saying so);
its cache keying, atomic writes, both API generations and the builder settings are tested with
fake TensorRT objects, so that logic runs on every machine.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crossover_ros.errors import RuntimeBackendError
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
from crossover_ros.model.graphs import GRAPH_NAMES, TEXT, tokenize
from crossover_ros.model.registry import load_graphs
from crossover_ros.runtime import backends as backends_module
from crossover_ros.runtime import export as export_module
from crossover_ros.runtime.backends import (
    OnnxRuntimeBackend,
    RuntimeCfg,
    TorchBackend,
    WithFallback,
    create_backend,
    create_backends,
)
from crossover_ros.runtime.engine_cache import EngineCache
from crossover_ros.runtime.export import OnnxCache, cosine_rows, parity, read_metadata
from crossover_ros.runtime.graph import GraphSpec, TensorSpec
from crossover_ros.runtime.tensorrt_engine import TensorRTBuilder, TensorRTRunner

PARITY = 0.9999
# Sizes other than the export example's (batch 2, opt sizes): the axes really are dynamic.
OTHER_SIZES = {
    "image": {"batch": 3},
    "frame_regions": {"batch": 3},
    "regions": {"batch": 7},
    "frames": {"batch": 3, "frames": 4},
    "scene_points": {"batch": 3, "points": 700},
    "instance_rgb": {"batch": 5},
    "instance_point_cloud": {"batch": 5, "points": 300},
    "instance_mesh": {"batch": 5, "points": 300},
    "instance_referral": {"batch": 5},
    "text_set": {"batch": 3, "sentences": 4},
}
ENCODERS = [n for n in GRAPH_NAMES if n != TEXT]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime_cache")


@pytest.fixture(scope="module")
def image_encoder():
    return ImageDescriptorEncoder()


@pytest.fixture(scope="module")
def graphs(image_encoder):
    return load_graphs(tuple(ENCODERS), image=image_encoder)


@pytest.fixture(scope="module")
def onnx_files(graphs, cache_dir) -> dict[str, Path]:
    cache = OnnxCache(cache_dir / "onnx")
    return {name: cache.ensure(graph) for name, graph in graphs.items()}


# -- export and parity ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_exports_with_a_dynamic_batch_and_matches_pytorch(name, graphs, onnx_files):
    import onnx

    graph, path = graphs[name], onnx_files[name]
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    for tensor in [*model.graph.input, *model.graph.output]:
        assert tensor.type.tensor_type.shape.dim[0].dim_param == "batch", tensor.name
    assert read_metadata(path) == (graph.spec, graph.fingerprint)
    backend = OnnxRuntimeBackend(path)
    rng = np.random.default_rng(1)
    for sizes in ({"batch": 1}, OTHER_SIZES[name]):
        cosines = parity(graph, backend, graph.spec.example(rng, **sizes))
        assert min(cosines.values()) >= PARITY, (sizes, cosines)


def test_graph_wrappers_compute_the_model_functions(graphs):
    """Float masks and flat object batches give exactly what the model's own methods give."""
    from crossover_ros.model import modalities as mod

    model = graphs["frames"].module.encoder  # the loaded CrossOverModel's frame-set encoder
    rng = np.random.default_rng(2)
    inputs = graphs["frames"].spec.example(rng, batch=2, frames=5)
    frames, mask = (torch.from_numpy(inputs[k]) for k in ("frames", "mask"))
    with torch.no_grad():
        expected = model(frames, mask > 0)
        unmasked = model(frames, torch.ones_like(mask, dtype=torch.bool))
    got = TorchBackend(graphs["frames"]).run(inputs)["embedding"]
    np.testing.assert_array_equal(got, expected.numpy())
    assert not np.allclose(got[0], unmasked[0].numpy())  # the left-out frame really is left out
    instance = graphs["instance_point_cloud"].module.encoder
    points = torch.rand(3, 200, 6)
    with torch.no_grad():
        expected = instance.project(mod.POINT_CLOUD, points[None])[0]
    got = TorchBackend(graphs["instance_point_cloud"]).run({"objects": points.numpy()})
    np.testing.assert_allclose(got["embedding"], expected.numpy(), atol=1e-6)


def test_text_encoder_from_token_ids_matches_the_text_backbone(cache_dir):
    """MiniLM exported from token ids; tokenisation stays in Python (same tokenizer settings)."""
    from crossover_ros.model.text_backbone import TextBackbone

    backbone = TextBackbone()
    graph = load_graphs((TEXT,))[TEXT]
    backend = create_backend(graph, RuntimeCfg(backend="onnxruntime", cache_dir=cache_dir))
    sentences = ["the chair", "a small wooden desk under the window next to a tall grey lamp"]
    expected = backbone.encode(sentences)
    got = backend.run(tokenize(backbone, sentences))["embedding"]
    assert cosine_rows(expected, got).min() >= PARITY
    single = backend.run(tokenize(backbone, sentences[:1]))["embedding"]  # no padding at all
    assert cosine_rows(expected[:1], single).min() >= PARITY


def test_cosine_rows_tells_apart_what_differs():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine_rows(a, a * 3), [1.0, 1.0])
    np.testing.assert_allclose(cosine_rows(a, a[::-1]), [0.0, 0.0], atol=1e-12)


def test_onnx_cache_exports_once_and_replaces_foreign_or_broken_files(
    graphs, tmp_path, monkeypatch
):
    graph = graphs["instance_referral"]
    calls = []
    real_export = export_module.export_onnx
    monkeypatch.setattr(
        export_module, "export_onnx", lambda g, p: calls.append(p) or real_export(g, p)
    )
    cache = OnnxCache(tmp_path)
    path = cache.ensure(graph)
    assert cache.ensure(graph) == path and len(calls) == 1  # cached: not exported again
    path.write_bytes(path.read_bytes()[:100])  # truncated by hand
    assert cache.ensure(graph) == path and len(calls) == 2
    other = graphs["instance_rgb"]
    os.replace(cache.ensure(other), path)  # a file of another graph under this name
    assert cache.ensure(graph) == path and len(calls) == 4
    assert read_metadata(path)[1] == graph.fingerprint


def test_a_failed_export_leaves_no_file(graphs, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        Path(args[2]).write_bytes(b"half a file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeBackendError, match="exporter crashed"):
        export_module.export_onnx(graphs["frames"], tmp_path / "frames.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_cache_re_exports_a_file_of_an_older_export_revision(graphs, tmp_path):
    import onnx

    graph = graphs["instance_referral"]
    cache = OnnxCache(tmp_path)
    path = cache.ensure(graph)
    model = onnx.load(str(path))  # as an older crossover_ros wrote it: no revision entry
    kept = [p for p in model.metadata_props if p.key != export_module.REVISION_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(path))
    stale = path.stat().st_mtime_ns
    assert cache.ensure(graph) == path and path.stat().st_mtime_ns != stale
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta[export_module.REVISION_KEY] == export_module.export_revision()


# Ops the ONNX parser of TensorRT 8.6 (JetPack 6) and 10 turns into layers; no Loop, If or Scan:
# the point encoders' FPS is unrolled, which ONNX Runtime also runs faster than a Loop.
TENSORRT_OPS = {
    "Add", "ArgMax", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Div", "Equal",
    "Erf", "Expand", "Flatten", "Gather", "GatherElements", "Gemm", "LayerNormalization",
    "MatMul", "Max", "Min", "Mul", "Pad", "Pow", "Range", "ReduceL2", "ReduceMax", "ReduceMean",
    "ReduceSum", "Relu", "Reshape", "Shape", "Slice", "Split", "Sqrt", "Squeeze", "Sub", "TopK",
    "Transpose", "Unsqueeze", "Where",
}  # fmt: skip


# The instance graphs end in InstanceProjectionGraph's squeeze(1) of a dynamic shape, which the
# exporter writes as an If (TensorRT imports one branch where the condition is known at build).
@pytest.mark.parametrize(
    "name, most_ops, wrapper_ops",
    [
        ("scene_points", 700, set()),
        ("instance_point_cloud", 320, {"If"}),
        ("instance_mesh", 320, {"If"}),
    ],
)
def test_point_encoder_graphs_are_compact_and_tensorrt_parsable(
    name, most_ops, wrapper_ops, onnx_files
):
    """The FPS loop unrolls into ~15 ops a step, with no per-step shape, reshape or concat."""
    import onnx

    ops = [node.op_type for node in onnx.load(str(onnx_files[name])).graph.node]
    assert len(ops) <= most_ops, len(ops)
    assert set(ops) <= TENSORRT_OPS | wrapper_ops, set(ops) - TENSORRT_OPS - wrapper_ops


def test_exported_fps_and_knn_pick_what_pytorch_picks(tmp_path):
    """The export-only FPS formulation, run by ONNX Runtime: the same indices as eager PyTorch,
    on clouds with duplicate points and exact ties (dynamic batch and point count)."""
    import onnxruntime as ort

    from crossover_ros.model.point_encoder import farthest_point_sample, knn

    class Grouping(torch.nn.Module):
        def forward(self, xyz):
            centres = farthest_point_sample(xyz, 16)
            picked = torch.gather(xyz, 1, centres.unsqueeze(-1).expand(-1, -1, 3))
            return centres, knn(picked, xyz, 8)

    path = tmp_path / "grouping.onnx"
    torch.onnx.export(
        Grouping(),
        (torch.rand(2, 100, 3),),
        str(path),
        input_names=["xyz"],
        output_names=["centres", "neighbours"],
        dynamic_axes={"xyz": {0: "batch", 1: "points"}},
        opset_version=export_module.OPSET,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for batch, count in ((1, 64), (3, 500), (4, 1024)):
        xyz = rng.uniform(-2, 2, (batch, count, 3)).astype(np.float32)
        xyz[0, 5:30] = xyz[0, 2]  # duplicates
        if count == 500:
            xyz = np.round(xyz * 2) / 2  # a coarse grid: many equal FPS distances
        with torch.no_grad():
            centres, neighbours = Grouping()(torch.from_numpy(xyz))
        got_centres, got_neighbours = session.run(None, {"xyz": xyz})
        np.testing.assert_array_equal(got_centres, centres.numpy())
        if count == 500:  # grid points at equal distance may rank either way in a top-k
            continue
        # The same neighbour points (of duplicates, either copy may be picked).
        rows = np.arange(batch)[:, None, None]
        np.testing.assert_array_equal(
            np.sort(xyz[rows, got_neighbours], axis=2), np.sort(xyz[rows, neighbours], axis=2)
        )


def test_object_transformer_exports_with_any_object_count(tmp_path):
    """What the relocaliser runs on segmented objects (point encoder, object transformer,
    [context | token]) exports too, though it runs in PyTorch today: same embeddings from
    ONNX Runtime for any number of objects, with TensorRT-parsable ops."""
    import onnx
    import onnxruntime as ort

    from crossover_ros.model import modalities as mod
    from crossover_ros.model.instance_encoder import InstanceEncoder

    class PointObjects(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = InstanceEncoder()

        def forward(self, points, centroids):
            mask = torch.ones(points.shape[:2], dtype=torch.bool)
            embedded = self.encoder({mod.POINT_CLOUD: points}, {mod.POINT_CLOUD: mask}, centroids)
            return embedded[mod.POINT_CLOUD]

    torch.manual_seed(0)
    graph = PointObjects().eval()
    path = tmp_path / "objects.onnx"
    torch.onnx.export(
        graph,
        (torch.randn(1, 5, 64, 6), torch.randn(1, 5, 3)),
        str(path),
        input_names=["points", "centroids"],
        output_names=["embeddings"],
        dynamic_axes={"points": {1: "objects"}, "centroids": {1: "objects"}},
        opset_version=export_module.OPSET,
        dynamo=False,
    )
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    attention_ops = {"Softmax", "Greater", "Not", "Or", "Identity"}  # in TensorRT's ONNX op list
    assert ops <= TENSORRT_OPS | attention_ops, ops - TENSORRT_OPS - attention_ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for count in (1, 5, 12):
        points, centroids = torch.randn(1, count, 64, 6), torch.randn(1, count, 3)
        with torch.no_grad():
            expected = graph(points, centroids).numpy()
        (got,) = session.run(None, {"points": points.numpy(), "centroids": centroids.numpy()})
        assert got.shape == (1, count, 512)
        np.testing.assert_allclose(got, expected, atol=1e-5)


# -- backends and the auto choice -----------------------------------------------------------------
def test_runtime_cfg_refuses_unknown_settings():
    with pytest.raises(RuntimeBackendError, match="backend"):
        RuntimeCfg(backend="tflite")
    with pytest.raises(RuntimeBackendError, match="precision"):
        RuntimeCfg(precision="int8")


def test_auto_takes_onnxruntime_without_tensorrt_and_logs_once(
    graphs, onnx_files, cache_dir, monkeypatch, caplog
):
    monkeypatch.setattr(backends_module, "tensorrt_status", lambda: (False, "no tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine
    cfg = RuntimeCfg(backend="auto", cache_dir=cache_dir)
    pick = {n: graphs[n] for n in ("frames", "instance_rgb")}
    with caplog.at_level(logging.INFO, logger="crossover_ros.runtime.backends"):
        chosen = create_backends(pick, cfg)
    assert {b.name for b in chosen.values()} == {"onnxruntime"}
    assert [r.message for r in caplog.records].count("inference backend auto: onnxruntime "
                                                     "(no tensorrt)") == 1  # fmt: skip
    monkeypatch.setattr(backends_module, "onnxruntime_available", lambda: False)
    assert create_backends(pick, cfg)["frames"].name == "torch"


def test_auto_runs_pytorch_on_the_gpu_before_onnxruntime_on_the_cpu(monkeypatch):
    """A GPU machine without TensorRT: ONNX Runtime only first where it has its CUDA provider."""
    monkeypatch.setattr(backends_module, "tensorrt_status", lambda: (False, "no tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backends_module, "_onnxruntime_has_cuda", lambda: True)
    assert backends_module.auto_order()[0] == ["onnxruntime", "torch:cuda", "torch"]
    monkeypatch.setattr(backends_module, "_onnxruntime_has_cuda", lambda: False)
    assert backends_module.auto_order()[0] == ["torch:cuda", "onnxruntime", "torch"]
    asked = []

    def fake(graph, cfg, kind=None):
        asked.append((kind, cfg.torch_device))
        if cfg.torch_device == "cuda":
            raise RuntimeBackendError("CUDA out of memory")
        return SimpleNamespace(name=kind)

    monkeypatch.setattr(backends_module, "create_backend", fake)
    chosen = create_backends({"frames": object()}, RuntimeCfg(backend="auto"))
    assert asked == [("torch", "cuda"), ("onnxruntime", "cpu")]
    assert chosen["frames"].name == "onnxruntime"


def test_auto_falls_back_with_a_warning_when_tensorrt_fails(
    graphs, onnx_files, cache_dir, monkeypatch, caplog
):
    monkeypatch.setattr(backends_module, "tensorrt_status", lambda: (True, "tensorrt on fake"))
    real = backends_module.create_backend

    def failing(graph, cfg, kind=None):
        if kind == "tensorrt":
            raise RuntimeBackendError("engine build failed")
        return real(graph, cfg, kind)

    monkeypatch.setattr(backends_module, "create_backend", failing)
    with caplog.at_level(logging.WARNING):
        chosen = create_backends(
            {"frames": graphs["frames"]}, RuntimeCfg(backend="auto", cache_dir=cache_dir)
        )
    assert chosen["frames"].name == "onnxruntime"
    assert any("engine build failed" in r.message for r in caplog.records)


def test_onnxruntime_backend_uses_the_given_threads(onnx_files):
    backend = OnnxRuntimeBackend(onnx_files["frames"], num_threads=1, optimization="basic")
    options = backend.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert backend.providers[-1] == "CPUExecutionProvider"


# -- the pipeline encoders through each backend ---------------------------------------------------
@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    shapes = [(240, 320), (240, 320), (120, 160)]  # the last is resized before the graph
    return [rng.integers(0, 255, (*s, 3), dtype=np.uint8) for s in shapes]


@pytest.mark.parametrize("model", ["global_descriptor", "crossover"])
def test_encoders_agree_across_torch_and_onnxruntime(model, images, onnx_files, cache_dir):
    from crossover_ros.model.registry import create_encoder

    torch_encoder = create_encoder(model, cache_dir=cache_dir)
    ort_encoder = create_encoder(model, backend="onnxruntime", cache_dir=cache_dir)
    assert (torch_encoder.backend, ort_encoder.backend) == ("torch", "onnxruntime")
    assert torch_encoder.fingerprint == ort_encoder.fingerprint
    reference = torch_encoder.frame_features(images)
    features = ort_encoder.frame_features(images)
    assert features.shape == reference.shape and features.dtype == np.float32
    assert cosine_rows(reference, features).min() >= PARITY
    query = ort_encoder.query(features)
    assert query.shape == (len(query), ort_encoder.dim)
    assert cosine_rows(torch_encoder.query(reference), query).min() >= PARITY
    if model == "crossover":  # object crops and floorplans: other sizes, same graph
        crops = [im[:128, :128] for im in images]
        a = torch_encoder.backbone.pooled_features(crops, size=(128, 128))
        b = ort_encoder.backbone.pooled_features(crops, size=(128, 128))
        assert cosine_rows(a, b).min() >= PARITY


def test_torch_backend_gives_what_the_model_gives(images, image_encoder):
    """The torch path of the encoders is the model's own function, not an approximation."""
    with torch.inference_mode():
        descriptor, pooled = image_encoder.model.forward_outputs(image_encoder.preprocess(images))
    assert image_encoder.backend.name == "torch"
    np.testing.assert_allclose(image_encoder.encode(images), descriptor.numpy(), atol=1e-6)
    np.testing.assert_allclose(image_encoder.pooled_features(images), pooled.numpy(), atol=1e-5)
    assert image_encoder.encode([]).shape == (0, image_encoder.dim)


def test_inputs_a_backend_cannot_take_run_in_pytorch(graphs, images, image_encoder):
    class FixedShapeBackend:
        name = "fixed"
        runs = 0

        def run(self, inputs):
            self.runs += 1
            raise AssertionError("must not run")

        def supports(self, shapes):
            return False

    reference = image_encoder.encode(images)
    encoder = ImageDescriptorEncoder()
    backend = FixedShapeBackend()
    encoder.run_in(WithFallback(graphs["image"], backend))
    np.testing.assert_allclose(encoder.encode(images), reference, atol=1e-6)
    assert backend.runs == 0


# -- TensorRT engine cache (fake builder) ---------------------------------------------------------
SPEC = GraphSpec("fake", (TensorSpec("x", ("batch", 3)),), ("y",), {"batch": (1, 2, 4)})


class FakeBuilder:
    """Counts builds; ``platform`` can be changed to play another GPU or TensorRT version."""

    def __init__(self) -> None:
        self.builds = 0
        self.gpu = "Fake GPU"

    def platform(self) -> dict[str, str]:
        return {"tensorrt_version": "10.0", "gpu_name": self.gpu, "compute_capability": "8.7"}

    def build(self, onnx_path: Path, spec: GraphSpec, precision: str) -> bytes:
        self.builds += 1
        return f"engine {spec.name} {precision} {onnx_path.read_bytes()!r} {self.gpu}".encode()


@pytest.fixture
def fake_onnx(tmp_path) -> Path:
    path = tmp_path / "fake.onnx"
    path.write_bytes(b"graph v1")
    return path


def test_engine_cache_builds_once_and_keys_on_every_input(tmp_path, fake_onnx):
    builder = FakeBuilder()
    cache = EngineCache(tmp_path / "engines", builder)
    first = cache.get(fake_onnx, SPEC, "fp16")
    assert cache.get(fake_onnx, SPEC, "fp16") == first and builder.builds == 1
    assert cache.get(fake_onnx, SPEC, "fp32") != first and builder.builds == 2
    wider = GraphSpec("fake", SPEC.inputs, SPEC.outputs, {"batch": (1, 2, 8)})
    assert cache.get(fake_onnx, wider, "fp16") != first and builder.builds == 3
    builder.gpu = "Other GPU"  # the same folder on another robot
    assert cache.get(fake_onnx, SPEC, "fp16") != first and builder.builds == 4
    builder.gpu = "Fake GPU"
    fake_onnx.write_bytes(b"graph v2")  # re-exported model
    stale = cache.get(fake_onnx, SPEC, "fp16")
    assert stale != first and builder.builds == 5 and b"v2" in stale.read_bytes()
    meta = json.loads(stale.with_suffix(".json").read_text())
    assert meta["key"]["gpu_name"] == "Fake GPU" and meta["key"]["precision"] == "fp16"


def test_a_foreign_or_damaged_engine_is_rebuilt_not_used(tmp_path, fake_onnx):
    builder = FakeBuilder()
    cache = EngineCache(tmp_path, builder)
    path = cache.get(fake_onnx, SPEC, "fp16")
    good = path.read_bytes()
    path.write_bytes(good[:5])  # truncated
    assert cache.get(fake_onnx, SPEC, "fp16").read_bytes() == good and builder.builds == 2
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["key"]["gpu_name"] = "Jetson Orin"  # an engine copied in from another machine
    sidecar.write_text(json.dumps(meta))
    cache.get(fake_onnx, SPEC, "fp16")
    assert builder.builds == 3
    sidecar.unlink()  # an engine with no key at all
    cache.get(fake_onnx, SPEC, "fp16")
    assert builder.builds == 4 and sidecar.is_file()


def test_an_interrupted_engine_write_leaves_no_half_file(tmp_path, fake_onnx, monkeypatch):
    from crossover_ros.runtime import engine_cache

    builder = FakeBuilder()
    cache = EngineCache(tmp_path / "engines", builder)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_cache.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.get(fake_onnx, SPEC, "fp16")
    assert list((tmp_path / "engines").iterdir()) == []  # no engine, no temporary file
    monkeypatch.undo()
    path = cache.get(fake_onnx, SPEC, "fp16")
    assert path.is_file() and builder.builds == 2

    class FailingBuilder(FakeBuilder):
        def build(self, onnx_path, spec, precision):
            raise RuntimeBackendError("out of memory")

    with pytest.raises(RuntimeBackendError):
        EngineCache(tmp_path / "other", FailingBuilder()).get(fake_onnx, SPEC, "fp16")
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").iterdir())


# -- TensorRT API generations (fake tensorrt modules) ---------------------------------------------
def _view(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 numpy view of memory at ``ptr`` (what a fake engine reads and writes)."""
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape)


class _FakeEngineBase:
    """Engine computing y = 2 x + 1, batch 1..4 (the SPEC profile)."""

    names = ("x", "y")

    def create_execution_context(self):
        return self.context_class()


class _TensorContext:
    def __init__(self) -> None:
        self.shape, self.addresses = None, {}

    def set_input_shape(self, name, shape):
        self.shape = tuple(shape)
        return 1 <= shape[0] <= 4

    def get_tensor_shape(self, name):
        return self.shape

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream):
        _view(self.addresses["y"], self.shape)[:] = 2 * _view(self.addresses["x"], self.shape) + 1
        return True


class FakeTensorEngine(_FakeEngineBase):
    """TensorRT 10: tensor-name API only."""

    num_io_tensors = 2
    context_class = _TensorContext

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return "input" if name == "x" else "output"

    def get_tensor_dtype(self, name):
        return "float"


class _BindingContext:
    def __init__(self) -> None:
        self.shape = None

    def set_binding_shape(self, index, shape):
        self.shape = tuple(shape)
        return 1 <= shape[0] <= 4

    def get_binding_shape(self, index):
        return self.shape

    def execute_v2(self, bindings):
        _view(bindings[1], self.shape)[:] = 2 * _view(bindings[0], self.shape) + 1
        return True


class FakeBindingEngine(_FakeEngineBase):
    """TensorRT 8.4 and older: bindings API only."""

    num_bindings = 2
    context_class = _BindingContext

    def get_binding_name(self, index):
        return self.names[index]

    def get_binding_index(self, name):
        return self.names.index(name)

    def binding_is_input(self, index):
        return index == 0

    def get_binding_dtype(self, index):
        return "float"


def _fake_trt(version: str, engine) -> SimpleNamespace:
    logger = SimpleNamespace(WARNING=2)
    return SimpleNamespace(
        __version__=version,
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, s: None}),
        TensorIOMode=SimpleNamespace(INPUT="input", OUTPUT="output"),
        nptype=lambda dtype: {"float": np.float32}[dtype],
        Runtime=lambda log: SimpleNamespace(
            deserialize_cuda_engine=lambda blob: engine if blob == b"plan" else None
        ),
        logger=logger,
    )


@pytest.mark.parametrize(
    ("version", "engine", "api"),
    [("10.3.0", FakeTensorEngine(), "tensors"), ("8.2.1", FakeBindingEngine(), "bindings")],
)
def test_runner_speaks_both_tensorrt_apis(tmp_path, version, engine, api):
    plan = tmp_path / "fake.engine"
    plan.write_bytes(b"plan")
    runner = TensorRTRunner(plan, SPEC, trt=_fake_trt(version, engine), device="cpu")
    assert runner.api == api and runner.inputs == ["x"] and runner.outputs == ["y"]
    x = np.arange(6, dtype=np.float64).reshape(2, 3)  # cast to the engine's float32
    np.testing.assert_array_equal(runner.run({"x": x})["y"], 2 * x + 1)
    assert runner.supports({"x": (4, 3)}) and not runner.supports({"x": (5, 3)})
    with pytest.raises(RuntimeBackendError, match="outside the profile"):
        runner.run({"x": np.zeros((5, 3), np.float32)})


def test_runner_refuses_an_engine_tensorrt_cannot_load(tmp_path):
    plan = tmp_path / "foreign.engine"
    plan.write_bytes(b"built elsewhere")
    with pytest.raises(RuntimeBackendError, match="cannot load"):
        TensorRTRunner(plan, SPEC, trt=_fake_trt("10.0.0", FakeTensorEngine()), device="cpu")
    plan.write_bytes(b"plan")
    with pytest.raises(RuntimeBackendError, match="no bindings API"):
        TensorRTRunner(
            plan, SPEC, trt=_fake_trt("10.0.0", FakeTensorEngine()), device="cpu", api="bindings"
        )


class _Recorder:
    """Fake TensorRT builder objects: every call lands in ``calls``."""

    def __init__(self, version: str, pool_api: bool, parse_ok: bool = True) -> None:
        self.calls: dict[str, object] = {"shapes": {}}
        calls = self.calls

        class Config:
            def set_flag(self, flag):
                calls["flag"] = flag

            def add_optimization_profile(self, profile):
                calls["profile_added"] = True

            def __setattr__(self, name, value):
                calls[name] = value

        if pool_api:
            Config.set_memory_pool_limit = lambda self, pool, size: calls.update(pool=(pool, size))

        class Builder:
            platform_has_fast_fp16 = True

            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls["network_flags"] = flags
                return "network"

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return SimpleNamespace(set_shape=lambda n, *s: calls["shapes"].update({n: s}))

            def build_serialized_network(self, network, config):
                return b"serialized"

        self.trt = SimpleNamespace(
            __version__=version,
            Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, s: None}),
            Builder=Builder,
            NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0),
            MemoryPoolType=SimpleNamespace(WORKSPACE="workspace"),
            BuilderFlag=SimpleNamespace(FP16="FP16"),
            OnnxParser=lambda network, logger: SimpleNamespace(
                parse_from_file=lambda path: parse_ok,
                num_errors=0 if parse_ok else 1,
                get_error=lambda i: "Unsupported op: FancyOp",
            ),
        )


@pytest.mark.parametrize(
    ("version", "pool_api", "flags"),
    [("10.3.0", True, 0), ("8.6.1", True, 1), ("8.2.3", False, 1)],
)
def test_builder_uses_the_api_of_each_tensorrt_version(tmp_path, version, pool_api, flags):
    fake = _Recorder(version, pool_api)
    blob = TensorRTBuilder(workspace_mb=64, trt=fake.trt).build(tmp_path / "x.onnx", SPEC, "fp16")
    calls = fake.calls
    assert blob == b"serialized" and calls["network_flags"] == flags
    if pool_api:
        assert calls["pool"] == ("workspace", 64 << 20) and "max_workspace_size" not in calls
    else:
        assert calls["max_workspace_size"] == 64 << 20
    assert calls["flag"] == "FP16" and calls["profile_added"]
    assert calls["shapes"] == {"x": ((1, 3), (2, 3), (4, 3))}
    fp32 = _Recorder(version, pool_api)
    TensorRTBuilder(trt=fp32.trt).build(tmp_path / "x.onnx", SPEC, "fp32")
    assert "flag" not in fp32.calls


def test_builder_reports_what_tensorrt_cannot_parse(tmp_path):
    fake = _Recorder("10.3.0", True, parse_ok=False)
    with pytest.raises(RuntimeBackendError, match="FancyOp"):
        TensorRTBuilder(trt=fake.trt).build(tmp_path / "x.onnx", SPEC, "fp16")


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_export_writes_checked_files(tmp_path, capsys):
    from crossover_ros.cli.main import main

    assert main(["export", "--out", str(tmp_path), "--encoders", "frames"]) == 0
    out = capsys.readouterr().out
    assert "frames" in out and len(list(tmp_path.glob("frames-*.onnx"))) == 1


def test_cli_build_engines_without_tensorrt_is_one_error_line(capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    from crossover_ros.cli.main import main

    assert main(["build-engines"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: TensorRT is not installed")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none")
@pytest.mark.parametrize("name", ENCODERS)
def test_torch_backend_on_a_gpu_gives_what_the_cpu_gives(name, image_encoder, cache_dir):
    """The PyTorch backend on a GPU, what ``auto`` takes on a GPU machine without TensorRT:
    every encoder runs there and agrees with the CPU. A fresh model: the shipped weights are
    not needed for it."""
    from crossover_ros.runtime.tensorrt_engine import tensorrt_status

    torch.manual_seed(0)
    graph = load_graphs((name,), image=image_encoder, model=CrossOverModel().eval())[name]
    inputs = graph.spec.example(np.random.default_rng(7), **OTHER_SIZES[name])
    backend = create_backends({name: graph}, RuntimeCfg(backend="auto", cache_dir=cache_dir))
    backend = backend[name]
    if tensorrt_status()[0] or backends_module._onnxruntime_has_cuda():
        backend = TorchBackend(graph, "cuda")  # auto took a faster one, tested on its own
    assert (backend.name, backend.device) == ("torch", "cuda")
    on_gpu = backend.run(inputs)
    for output, expected in TorchBackend(graph, "cpu").run(inputs).items():
        assert cosine_rows(expected, on_gpu[output]).min() >= PARITY, output


# -- real TensorRT (a CUDA GPU with tensorrt installed) -------------------------------------------
def _tensorrt_or_skip():
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT not installed (pip install tensorrt on a CUDA machine)")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU; torch sees none")


@pytest.mark.parametrize("name", ["image", "frames", "scene_points"])
def test_tensorrt_engines_match_pytorch(name, graphs, onnx_files, cache_dir):
    _tensorrt_or_skip()
    graph = graphs[name]
    rng = np.random.default_rng(5)
    inputs = graph.spec.example(rng)
    reference = TorchBackend(graph, "cuda").run(inputs)
    results = {}
    for precision in ("fp32", "fp16"):
        cfg = RuntimeCfg(cache_dir=cache_dir, precision=precision)
        backend = create_backend(graph, cfg, "tensorrt")
        results[precision] = {
            k: cosine_rows(reference[k], v).min() for k, v in backend.run(inputs).items()
        }
    assert min(results["fp32"].values()) >= PARITY, results
    if name != "scene_points":  # FP16 distances may pick other FPS centres: reported by bench
        assert min(results["fp16"].values()) >= 0.99, results


def test_tensorrt_engine_is_reused_and_old_apis_work(graphs, onnx_files, cache_dir):
    _tensorrt_or_skip()
    import tensorrt

    from crossover_ros.runtime.tensorrt_engine import TensorRTBuilder as Real

    class Counting(Real):
        builds = 0

        def build(self, *args):
            Counting.builds += 1
            return super().build(*args)

    graph = graphs["frames"]
    cache = EngineCache(cache_dir / "engines-reuse", Counting())
    path = cache.get(onnx_files["frames"], graph.spec, "fp32")
    assert cache.get(onnx_files["frames"], graph.spec, "fp32") == path and Counting.builds == 1
    inputs = graph.spec.example(np.random.default_rng(6))
    reference = TorchBackend(graph, "cuda").run(inputs)["embedding"]
    apis = ["tensors"] + (["bindings"] if int(tensorrt.__version__.split(".")[0]) < 10 else [])
    for api in apis:
        got = TensorRTRunner(path, graph.spec, api=api).run(inputs)["embedding"]
        assert cosine_rows(reference, got).min() >= PARITY, api


def test_encoder_bench_measures_the_region_graphs(onnx_files, cache_dir, capsys):
    """`crossover_ros bench encoders` covers the node's region graphs: both input sizes on
    every CPU backend, each output as PyTorch's (the exported files of this module reused)."""
    from crossover_ros.cli.main import main

    argv = ["bench", "encoders", "--encoders", "frame_regions", "regions", "--repeats", "2"]
    assert main([*argv, "--warmup", "1", "--cache", str(cache_dir)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    rows = [row for row in rows if row and row[0] in ("frame_regions", "regions")]
    measured = {(row[0], row[1], row[2]) for row in rows}
    assert measured == {
        (name, shape, backend)
        for name, shapes in (
            ("frame_regions", ("1x3x240x320", "6x3x240x320")),
            ("regions", ("1x20x1280", "6x20x1280")),
        )
        for shape in shapes
        for backend in ("torch", "onnxruntime")
    }
    assert all(float(row[-2]) >= PARITY for row in rows)  # cosine to PyTorch


@pytest.mark.parametrize("loose", ["folder", "engine"])
def test_an_engine_cache_writable_by_others_is_refused(tmp_path, fake_onnx, loose):
    from crossover_ros.errors import RuntimeBackendError

    builder = FakeBuilder()
    cache = EngineCache(tmp_path / "engines", builder)
    path = cache.get(fake_onnx, SPEC, "fp16")
    assert path.stat().st_mode & 0o022 == 0 and cache.folder.stat().st_mode & 0o022 == 0
    (cache.folder if loose == "folder" else path).chmod(0o777 if loose == "folder" else 0o666)
    with pytest.raises(RuntimeBackendError, match=r"writable by .*must be trusted.*chmod go-w"):
        cache.get(fake_onnx, SPEC, "fp16")
    assert builder.builds == 1, "neither loaded nor rebuilt over"
