import numpy as np
import pytest
from scipy import ndimage as ndi

from voxseg import edges
from voxseg.errors import ParameterError

NAMES = ["sobel", "scharr", "prewitt"]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _image(rng, dtype, shape=(8, 20, 18)):
    data = ndi.gaussian_filter(rng.random(shape), 1.0)
    data = (data - data.min()) / (data.max() - data.min())
    if np.issubdtype(dtype, np.integer):
        return (data * 1000).astype(dtype)
    return data.astype(dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 20, 18), (20, 18)])
def test_equals_skimage_at_unit_spacing(rng, name, dtype, shape):
    import skimage.filters

    image = _image(rng, dtype, shape)
    out = getattr(edges, name)(image)
    # scikit-image rescales integers to [0, 1]; voxseg does not
    ref = getattr(skimage.filters, name)(image.astype(np.float64))
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(ref.max())))


@pytest.mark.parametrize("name", NAMES)
def test_planewise_equals_skimage_2d_per_plane(rng, name):
    import skimage.filters

    image = _image(rng, np.float32)
    out = getattr(edges, name)(image, planewise=True, spacing=(5.0, 1.0, 1.0))
    ref = np.stack([getattr(skimage.filters, name)(p) for p in image])
    np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5), (4.0, 1.0, 0.25)])
def test_ramp_response_is_per_unit_length(name, axis, spacing):
    slope = 3.0  # intensity per unit length
    shape = (7, 9, 11)
    coords = np.indices(shape)[axis] * spacing[axis]
    image = (slope * coords).astype(np.float32)
    out = getattr(edges, name)(image, spacing=spacing)
    inner = (slice(1, -1),) * 3
    np.testing.assert_allclose(out[inner], 2 * slope / np.sqrt(3), rtol=1e-5)


def test_same_physical_edge_same_response_along_z_and_x():
    spacing = (2.0, 0.5, 0.5)
    # a step blurred over the same physical width, once along z, once along x
    z = np.arange(32) * spacing[0]
    x = np.arange(128) * spacing[2]
    prof_z = np.tanh((z - z.mean()) / 10.0)
    prof_x = np.tanh((x - x.mean()) / 10.0)
    along_z = np.broadcast_to(prof_z[:, None, None], (32, 8, 8)).astype(np.float32)
    along_x = np.broadcast_to(prof_x[None, None, :], (4, 8, 128)).astype(np.float32)
    mz = edges.sobel(along_z, spacing=spacing).max()
    mx = edges.sobel(along_x, spacing=spacing).max()
    assert mz == pytest.approx(mx, rel=0.03)  # central differences on the coarse grid
    # ignoring the spacing, the z edge looks 4 times steeper per voxel
    assert edges.sobel(along_z).max() > 3 * edges.sobel(along_x).max()


def test_constant_image_has_no_edges():
    out = edges.scharr(np.full((4, 5, 6), 7, dtype=np.uint8))
    assert not out.any()


def test_errors():
    with pytest.raises(ParameterError, match="2D or 3D"):
        edges.sobel(np.zeros(5))
    with pytest.raises(ParameterError, match="planewise"):
        edges.sobel(np.zeros((5, 5)), planewise=True)
    with pytest.raises(ParameterError, match="spacing"):
        edges.sobel(np.zeros((3, 5, 5)), spacing=(1, 1))
