import numpy as np
import pytest

from crossover_ros.errors import ModelError
from crossover_ros.model.global_descriptor import ImageDescriptorEncoder


@pytest.fixture(scope="module")
def encoder():
    return ImageDescriptorEncoder()


def test_unit_descriptors_any_image_size(encoder):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(240, 320), (120, 160)]]
    out = encoder.encode(images)
    assert out.shape == (2, encoder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_similar_images_are_closer_than_different_ones(encoder):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    noisy = np.clip(base.astype(int) + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)
    other = np.zeros_like(base)
    other[:, 160:] = (200, 40, 40)
    a, b, c = encoder.encode([base, noisy, other])
    assert a @ b > 0.95
    assert a @ b > a @ c + 0.1


def test_fingerprint_is_stable_and_bad_images_are_refused(encoder):
    assert encoder.fingerprint == ImageDescriptorEncoder().fingerprint
    with pytest.raises(ModelError, match="uint8 RGB"):
        encoder.encode([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ModelError, match="uint8 RGB"):
        encoder.encode([np.zeros((10, 10, 3), np.float32)])
