"""CrossOver model: shapes and masking of every encoder, losses, checkpoints, a tiny training."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from crossover_ros.errors import ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.batches import make_batch
from crossover_ros.model.crossover import CrossOverCfg, CrossOverModel
from crossover_ros.model.instance_encoder import InstanceEncoder, object_descriptors
from crossover_ros.model.losses import anchored_info_nce, info_nce
from crossover_ros.model.point_encoder import (
    PointEncoder,
    PointEncoderCfg,
    farthest_point_sample,
    knn,
)
from crossover_ros.model.scene_fusion import SceneFusion
from crossover_ros.model.unified import ScenePointEncoderCfg
from crossover_ros.train.pipeline import train_crossover
from crossover_ros.train.stages import (
    StageCfg,
    TrainCfg,
    hide_point_clouds,
    region_targets,
    train_stage,
)
from crossover_ros.train.synthetic import synthetic_scenes

B, K = 3, 5


def _object_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = {
        mod.RGB: torch.randn(B, K, 2560, generator=g),
        mod.POINT_CLOUD: torch.randn(B, K, 64, 6, generator=g),
        mod.MESH: torch.randn(B, K, 64, 3, generator=g),
        mod.REFERRAL: torch.randn(B, K, 384, generator=g),
    }
    masks = {m: torch.ones(B, K, dtype=torch.bool) for m in inputs}
    return inputs, masks, torch.randn(B, K, 3, generator=g)


def test_instance_encoder_shapes_and_masking():
    torch.manual_seed(0)
    encoder = InstanceEncoder().eval()
    inputs, masks, centroids = _object_inputs()
    masks[mod.POINT_CLOUD][0, 2] = False
    with torch.no_grad():
        out = encoder(inputs, masks, centroids)
        assert set(out) == set(mod.INSTANCE_MODALITIES)
        for embeddings in out.values():
            assert embeddings.shape == (B, K, 2 * 256)  # [context | token]
            torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(B, K))
        # a masked-out object cannot change the other objects' embeddings
        inputs[mod.POINT_CLOUD][0, 2] += 10.0
        changed = encoder(inputs, masks, centroids)[mod.POINT_CLOUD]
    keep = [0, 1, 3, 4]
    torch.testing.assert_close(changed[0, keep], out[mod.POINT_CLOUD][0, keep])
    # a scene without the modality at all stays finite
    masks[mod.REFERRAL][1] = False
    with torch.no_grad():
        assert torch.isfinite(encoder(inputs, masks, centroids)[mod.REFERRAL]).all()


def test_object_descriptor_cosine_is_the_mean_of_context_and_token_cosines():
    torch.manual_seed(0)
    encoder = InstanceEncoder().eval()
    inputs, masks, centroids = _object_inputs()
    with torch.no_grad():
        tokens, context = encoder.encode(inputs, masks, centroids)
        described = encoder(inputs, masks, centroids)[mod.RGB]  # what matching compares
    assert described.shape == (B, K, encoder.out_dim)
    torch.testing.assert_close(described, object_descriptors(tokens, context)[mod.RGB])
    torch.testing.assert_close(described.norm(dim=-1), torch.ones(B, K))
    unit_tokens = torch.nn.functional.normalize(tokens[mod.RGB], dim=-1)
    a, b = (0, 0), (1, 3)
    expected = 0.5 * (context[mod.RGB][a] @ context[mod.RGB][b] + unit_tokens[a] @ unit_tokens[b])
    torch.testing.assert_close(described[a] @ described[b], expected)


def test_batched_object_set_similarity_matches_the_map_search_one():
    from crossover_ros.mapdb.search import object_set_similarity
    from crossover_ros.model.losses import object_set_info_nce, object_set_similarities

    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(3, 5, 8, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(3, 5, 8, generator=g), dim=-1)
    a_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    b_mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    batched = object_set_similarities(a, a_mask, b, b_mask)
    for i in range(3):
        for j in range(3):
            expected = object_set_similarity(a[i][a_mask[i]].numpy(), b[j][b_mask[j]].numpy())
            assert batched[i, j].item() == pytest.approx(expected, abs=1e-6)
    # the same sets in both modalities: the true scene wins, the loss is low; shuffled, it is not
    same = object_set_info_nce(
        {mod.RGB: a, mod.POINT_CLOUD: a}, {mod.RGB: a_mask, mod.POINT_CLOUD: a_mask},
        mod.RGB, 0.05, torch.zeros(3, 3, dtype=torch.bool),
    )  # fmt: skip
    shuffled = object_set_info_nce(
        {mod.RGB: a, mod.POINT_CLOUD: a[[1, 2, 0]]},
        {mod.RGB: a_mask, mod.POINT_CLOUD: a_mask[[1, 2, 0]]},
        mod.RGB, 0.05, torch.zeros(3, 3, dtype=torch.bool),
    )  # fmt: skip
    assert same.item() < 0.5 < shuffled.item()
    # another scan of the same room is no negative: with all three one room, nothing to learn
    one_room = torch.ones(3, 3, dtype=torch.bool)
    assert object_set_info_nce(
        {mod.RGB: a, mod.POINT_CLOUD: a[[1, 2, 0]]},
        {mod.RGB: a_mask, mod.POINT_CLOUD: a_mask[[1, 2, 0]]},
        mod.RGB, 0.05, one_room,
    ).item() == pytest.approx(0.0)  # fmt: skip


def test_scene_fusion_ignores_missing_modalities():
    torch.manual_seed(0)
    fusion = SceneFusion().eval()
    objects = {
        m: torch.nn.functional.normalize(torch.randn(B, K, 256), dim=-1)
        for m in mod.INSTANCE_MODALITIES
    }
    masks = {m: torch.ones(B, K, dtype=torch.bool) for m in objects}
    masks[mod.MESH][:] = False
    with torch.no_grad():
        first = fusion(objects, masks)
        objects[mod.MESH] = torch.randn(B, K, 256)
        second = fusion(objects, masks)
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(B))


def test_fps_and_knn_against_brute_force():
    points = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [5, 0, 0], [0, 5, 0], [0.2, 0, 0]]])
    assert farthest_point_sample(points, 3)[0].tolist() == [0, 2, 3]
    rng = torch.Generator().manual_seed(1)
    cloud, query = torch.randn(2, 50, 3, generator=rng), torch.randn(2, 4, 3, generator=rng)
    brute = torch.cdist(query, cloud).topk(5, largest=False).indices
    assert torch.equal(knn(query, cloud, 5).sort(-1).values, brute.sort(-1).values)


# The point encoder as first written (plain loops and gathers, before it was rewritten for the
# exported graph): the reference the rewrite must match, indices bit for bit.
def _reference_fps(xyz, k):
    batch = torch.arange(xyz.shape[0])
    nearest = torch.full(xyz.shape[:2], float("inf"))
    current = torch.zeros(xyz.shape[0], dtype=torch.long)
    chosen = []
    for _ in range(k):
        chosen.append(current)
        centre = xyz[batch, current].unsqueeze(1)
        nearest = torch.minimum(nearest, ((xyz - centre) ** 2).sum(-1))
        current = nearest.argmax(-1)
    return torch.stack(chosen, dim=1)


def _reference_knn(query, points, k):
    squared = (
        (query**2).sum(-1, keepdim=True)
        - 2 * query @ points.transpose(1, 2)
        + (points**2).sum(-1).unsqueeze(1)
    )
    return squared.topk(k, dim=-1, largest=False).indices


def _reference_gather(points, index):
    flat = index.reshape(index.shape[0], -1)
    picked = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return picked.reshape(*index.shape, points.shape[-1])


def _reference_encoder(encoder, points):
    xyz = points[..., :3]
    centres = _reference_gather(xyz, _reference_fps(xyz, encoder.cfg.num_groups))
    patches = _reference_gather(points, _reference_knn(centres, xyz, encoder.cfg.group_size))
    offsets = patches[..., :3] - centres.unsqueeze(2)
    local = encoder.local(torch.cat([offsets, patches[..., 3:]], dim=-1)).amax(dim=2)
    return encoder.global_mlp(torch.cat([encoder.norm(local), centres], dim=-1)).amax(dim=1)


def _clouds(channels, seed=0):
    """Clouds of several sizes and scales, with duplicate points and a coarse grid (exact ties
    in FPS distances and kNN ranks)."""
    g = torch.Generator().manual_seed(seed)
    clouds = []
    for batch, count, scale in ((1, 1024, 3.0), (4, 1024, 8.0), (3, 300, 0.5), (5, 64, 1.0)):
        cloud = torch.rand(batch, count, channels, generator=g) * scale - scale / 2
        cloud[0, 10:40] = cloud[0, 5]  # duplicates
        clouds.append(cloud)
    clouds.append(torch.round(clouds[1] * 2) / 2)  # grid
    return clouds


def test_point_encoder_rewrite_matches_the_reference_on_the_shipped_weights():
    """FPS indices and kNN neighbours identical, outputs within float rounding (ONNX Runtime
    runs the same FPS: test_runtime)."""
    from crossover_ros.model.registry import default_model_path

    model, _ = CrossOverModel.load(default_model_path())
    encoders = [
        model.scene_points.encoder,
        model.instance.point_encoder,
        model.instance.mesh_encoder,
    ]
    for encoder in encoders:
        cfg = encoder.cfg
        for points in _clouds(cfg.in_channels):
            xyz = points[..., :3]
            expected = _reference_fps(xyz, cfg.num_groups)
            assert torch.equal(farthest_point_sample(xyz, cfg.num_groups), expected)
            centres = _reference_gather(xyz, expected)
            neighbours = knn(centres, xyz, cfg.group_size).sort(-1).values
            reference = _reference_knn(centres, xyz, cfg.group_size).sort(-1).values
            assert torch.equal(neighbours, reference)
            with torch.inference_mode():
                got, want = encoder(points), _reference_encoder(encoder, points)
            cosine = torch.nn.functional.cosine_similarity(got.double(), want.double(), dim=-1)
            assert cosine.min() >= 0.99999, cosine.min()
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_point_encoder_trains_through_the_rewritten_grouping():
    """Gradients reach every weight (FPS/kNN indices carry none) and the input points."""
    encoder = PointEncoder(PointEncoderCfg(num_groups=8, group_size=4))
    points = torch.rand(2, 40, 6, requires_grad=True)
    encoder(points).sum().backward()
    assert points.grad is not None and points.grad.abs().sum() > 0
    assert all(p.grad is not None for p in encoder.parameters())


def test_losses_reward_alignment_and_skip_missing_pairs():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(10.0)
    assert info_nce(a, a, scale) < info_nce(a, a.roll(1, 0), scale)
    assert info_nce(a[:1], a[:1], scale) == 0
    masks = {"x": torch.ones(8, dtype=torch.bool), "y": torch.zeros(8, dtype=torch.bool)}
    total, parts = anchored_info_nce({"x": a, "y": a.roll(1, 0)}, masks, "x", scale)
    assert float(total) == 0.0 and parts == {"y": 0.0}


def test_other_scans_of_a_room_are_not_negatives():
    """Two scans of one room (rows 0 and 1) embedded alike: a loss against them as negatives;
    marked as the same place, they leave the softmax and the loss is that of the rest."""
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    a[1] = a[0]
    scale = torch.tensor(10.0)
    same = torch.zeros(6, 6, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    masked = info_nce(a, a, scale, same)
    assert masked < info_nce(a, a, scale) - 0.1
    without_twin = torch.cat([a[:1], a[2:]])
    singles = info_nce(without_twin, without_twin, scale)
    assert torch.allclose(masked, singles, atol=0.05)
    rows = {"x": torch.ones(6, dtype=torch.bool), "y": torch.ones(6, dtype=torch.bool)}
    anchored, _ = anchored_info_nce({"x": a, "y": a}, rows, "x", scale, same)
    assert torch.allclose(anchored, masked)


def test_crop_subsets_average_some_of_each_objects_crops():
    from crossover_ros.model.batches import _crop_subset_means

    rng = np.random.default_rng(0)
    crops = np.zeros((3, 3, 4), np.float32)
    crops[0] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]  # three crops
    crops[1, 0] = [0, 0, 0, 5]  # one crop
    has = np.array([[True] * 3, [True, False, False], [False] * 3])  # object 2: no crop
    seen = set()
    for _ in range(200):
        means = _crop_subset_means(crops, has, rng)
        np.testing.assert_allclose(means[1], [0, 0, 0, 5])
        assert np.all(means[2] == 0)
        used = means[0] > 0
        assert used.any() and not used[3]
        np.testing.assert_allclose(means[0][used], 1.0 / used.sum())
        seen.add(tuple(used[:3]))
    assert len(seen) == 7  # every non-empty subset of the three crops occurs
    scene = synthetic_scenes(1, rng)[0]
    scene.object_crop_features = np.stack([scene.object_image, -scene.object_image], axis=1)
    scene.object_crop_frames = np.zeros((scene.num_objects, 2), np.int64)
    plain = make_batch([scene], np.random.default_rng(1))
    drawn = make_batch([scene], np.random.default_rng(1), crop_subsets=True)
    assert torch.equal(plain.object_inputs["rgb"][0], torch.from_numpy(scene.object_image))
    assert not torch.equal(drawn.object_inputs["rgb"], plain.object_inputs["rgb"])


def test_checkpoint_round_trip_and_clear_errors(tmp_path: Path):
    model = CrossOverModel()
    path = tmp_path / "m.safetensors"
    model.save(path, {"note": "test"})
    loaded, metadata = CrossOverModel.load(path)
    assert loaded.fingerprint() == model.fingerprint() and metadata["note"] == "test"
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot read"):
        CrossOverModel.load(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "f.safetensors"
    save_file({"w": torch.zeros(2)}, foreign, metadata={"format": "other"})
    with pytest.raises(ModelError, match="not a CrossOver checkpoint"):
        CrossOverModel.load(foreign)
    small = CrossOverModel(CrossOverCfg())
    state = {k: v for k, v in small.state_dict().items() if not k.startswith("text.")}
    save_file(
        state,
        foreign,
        metadata={"format": "crossover_ros.crossover/1", "config": small.cfg.to_json()},
    )
    with pytest.raises(ModelError, match="does not fit"):
        CrossOverModel.load(foreign)


def test_tiny_training_decreases_loss_and_retrieves_far_above_chance(tmp_path: Path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = synthetic_scenes(16, rng)
    fast = StageCfg(epochs=25, batch_size=8, lr=2e-3, num_scene_points=256, num_object_points=64)
    cfg = TrainCfg(stage1=fast, stage2=fast, stage3=fast, image_anchored_unified_pairs=True)
    small_points = PointEncoderCfg(
        num_groups=16, group_size=8, local_widths=(32, 64), global_widths=(128, 128)
    )
    model = CrossOverModel(CrossOverCfg(scene_points=ScenePointEncoderCfg(point=small_points)))
    history = train_stage("stage3", model, scenes, cfg, tmp_path, progress=False)
    assert history[-1] < 0.7 * history[0]
    with torch.no_grad():
        unified = model.unified_embeddings(make_batch(scenes, num_scene_points=256))
    similarity = unified[mod.RGB] @ unified[mod.POINT_CLOUD].T
    top1 = float((similarity.argmax(1) == torch.arange(16)).float().mean())
    assert top1 >= 0.5, f"I->P top-1 {top1:.2f}, chance is 1/16"
    # resuming a finished stage trains nothing more and keeps the history
    again = train_stage("stage3", model, scenes, cfg, tmp_path, progress=False)
    assert again == history


def test_a_batch_moves_every_tensor_to_the_device():
    batch = make_batch(synthetic_scenes(2, np.random.default_rng(0)), regions=True).to("meta")
    tensors = [v for v in vars(batch).values() if isinstance(v, torch.Tensor)]
    tensors += [*batch.object_inputs.values(), *batch.object_masks.values()]
    assert len(tensors) == 20 and all(t.device.type == "meta" for t in tensors)
    assert batch.scan_ids == ["syn_room000_00", "syn_room001_00"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none")
def test_every_stage_trains_on_a_gpu_as_on_the_cpu(tmp_path: Path):
    """Same scenes, seed and start: each stage's first epoch on the GPU has the CPU's loss
    (later epochs drift apart: farthest point sampling may break near-ties otherwise), and the
    checkpoint loads on the CPU (every tensor a loss makes lives on the model's device)."""
    scenes = synthetic_scenes(8, np.random.default_rng(0))
    fast = StageCfg(epochs=2, batch_size=4, num_scene_points=128, num_object_points=32)
    cfg = TrainCfg(stage1=fast, stage2=fast, stage3=fast, regions=fast)
    histories = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model, histories[device] = train_crossover(
            scenes, tmp_path / device, cfg, progress=False, device=device
        )
        assert next(model.parameters()).device.type == device
    for stage, losses in histories["cpu"].items():
        assert np.isfinite(histories["cuda"][stage]).all(), stage
        np.testing.assert_allclose(histories["cuda"][stage][0], losses[0], rtol=1e-2, err_msg=stage)
    trained, _ = CrossOverModel.load(tmp_path / "cuda" / "model.safetensors")
    batch = make_batch(scenes[:4], num_scene_points=128)
    with torch.no_grad():
        on_cpu = trained.encode_points(batch.scene_points)
        on_gpu = trained.cuda().encode_points(batch.to("cuda").scene_points).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=1e-4)


def test_region_stage_finds_the_object_that_covers_each_region(tmp_path: Path):
    """A model from before the region encoder gets one (its other weights kept); after the
    region stage, a region finds the object that covers it among its scene's objects, and
    objectness tells it from a region no object covers: enough to find scenes by the objects
    in their frames, with no instance masks."""
    from crossover_ros.eval.crossover_eval import (
        by_region_sets,
        embed_crossover,
        scene_retrieval_table,
    )

    torch.manual_seed(0)
    scenes = synthetic_scenes(16, np.random.default_rng(0))
    old = CrossOverModel(replace(CrossOverCfg(), regions=None))
    old.save(tmp_path / "stage3.safetensors")
    fast = StageCfg(epochs=15, batch_size=8, lr=1e-3, num_object_points=64)
    model, history = train_crossover(
        scenes, tmp_path, TrainCfg(regions=fast), CrossOverCfg(), ("regions",), progress=False
    )
    assert torch.equal(model.state_dict()["fusion.mlp.0.weight"], old.fusion.mlp[0].weight)
    assert history["regions"][-1] < 0.6 * history["regions"][0]
    batch = make_batch(scenes, regions=True)
    targets, _ = region_targets(model, batch)
    with torch.no_grad():
        embeddings, objectness = model.regions(batch.regions)
    owners = batch.region_objects
    covered = owners >= 0
    found = torch.einsum("bftd,bkd->bftk", embeddings, targets).argmax(-1)
    assert float((found[covered] == owners[covered]).float().mean()) > 0.9  # chance: 1/4
    assert bool((objectness[covered] > 0).all()) and bool((objectness[~covered] < 0).all())
    by_regions = by_region_sets(model, scenes, embed_crossover(model, scenes, 256))
    rows = scene_retrieval_table("m", by_regions)
    assert rows["m I->P"].recall[1] >= 0.9  # chance: 1/16
    assert all(name.startswith("m I->") for name in rows)  # only the image side changed


def test_a_region_sees_the_other_cells_of_its_frame_only():
    """Cell context: a cell's embedding changes with what the rest of its frame shows, never
    with another frame; without context layers (older checkpoints) each cell is alone."""
    from crossover_ros.model.regions import RegionEncoder, RegionEncoderCfg

    torch.manual_seed(0)
    for layers in (2, 0):
        encoder = RegionEncoder(
            RegionEncoderCfg(in_dim=32, hidden_dim=16, embed_dim=8, context_layers=layers)
        )
        for parameter in encoder.parameters():  # the residual branches start at zero
            torch.nn.init.normal_(parameter, std=0.3)
        encoder.eval()
        regions = torch.randn(2, 3, 20, 32)  # 2 windows of 3 frames, a 4 x 5 grid each
        embeddings, objectness = encoder(regions)
        assert embeddings.shape == (2, 3, 20, 8) and objectness.shape == (2, 3, 20)
        changed = regions.clone()
        changed[0, 1, 7] += 1.0  # one cell of one frame
        after, _ = encoder(changed)
        moved = (after - embeddings).abs().amax(-1) > 1e-6
        expected = torch.zeros(2, 3, 20, dtype=torch.bool)
        if layers:
            expected[0, 1] = True  # every cell of that frame, nothing else
        else:
            expected[0, 1, 7] = True
        assert torch.equal(moved, expected)


def test_checkpoints_from_before_cell_context_load_as_they_were():
    """A region encoder written without context layers reads back without them, with the
    configuration JSON (and so the fingerprint) it had."""
    from crossover_ros.model.regions import RegionEncoderCfg

    cfg = replace(CrossOverCfg(), regions=RegionEncoderCfg(context_layers=0))
    assert "context_layers" not in cfg.to_json()
    assert CrossOverCfg.from_json(cfg.to_json()) == cfg
    assert CrossOverCfg.from_json(CrossOverCfg().to_json()) == CrossOverCfg()
    assert CrossOverCfg().regions.context_layers > 0


@pytest.mark.parametrize("size", [(8, 10), (7, 10), (16, 16)])
def test_grid_mean_pools_cells_as_adaptive_pooling_does(size):
    """Region features: EfficientNet's 240 x 320 frame gives a 7 x 10 map, a ViT's 16 x 16
    patches; a 4 x 5 grid then has overlapping cells, exactly those of adaptive pooling."""
    from crossover_ros.model.layers import grid_mean

    features = torch.rand(2, 3, *size)
    expected = torch.nn.functional.adaptive_avg_pool2d(features, (4, 5)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(grid_mean(features, (4, 5)), expected)


def test_missing_modality_ablation_hides_a_fixed_share_of_the_scans():
    """The same scans lose their object point clouds for the whole stage, nothing else does."""
    scenes = synthetic_scenes(20, np.random.default_rng(0))
    kept = hide_point_clouds(scenes, 0.75, seed=0)
    hidden = [s.scan_id for s in kept if not s.object_points_mask.any()]
    assert len(hidden) == 15
    assert [s.scan_id for s in hide_point_clouds(scenes, 0.75, seed=0)] == [s.scan_id for s in kept]
    assert hidden == [
        s.scan_id for s in hide_point_clouds(scenes, 0.75, seed=0) if not s.object_points_mask.any()
    ]
    assert hidden != [
        s.scan_id for s in hide_point_clouds(scenes, 0.75, seed=1) if not s.object_points_mask.any()
    ]
    for before, after in zip(scenes, kept, strict=True):
        assert before.object_points_mask.all()  # the caller's scenes are left as they were
        assert after.object_image_mask.all() and after.object_mesh_mask.all()
    assert hide_point_clouds(scenes, 0.0, seed=0) is scenes
