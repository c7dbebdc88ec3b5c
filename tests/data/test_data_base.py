"""The dataset contract: Split validation, Standardizer units and round trip, the registry."""

from __future__ import annotations

import pytest
import torch

from hetreg.data import RegressionData, Split, Standardizer, load_dataset, seeded_permutation


def _tabular(n=50, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    split = lambda k: Split(x=torch.randn(k, d, generator=g) * 3 + 1, y=torch.randn(k, generator=g) * 5 + 2)  # noqa: E731
    return RegressionData(name="t", kind="tabular", train=split(n), val=split(5), test=split(7))


def test_split_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="rows"):
        Split(x=torch.zeros(3, 2), y=torch.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        Split(x=torch.zeros(3, 2), y=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="variance"):
        Split(x=torch.zeros(3, 2), y=torch.zeros(3), variance=torch.zeros(2))
    with pytest.raises(ValueError, match="ids"):
        Split(x=torch.zeros(3, 2), y=torch.zeros(3), ids=("a",))


def test_standardizer_units_for_labels_variances_and_thresholds():
    data = _tabular()
    s = Standardizer.fit(data)
    y = data.train.y.double()
    assert s.y_mean == pytest.approx(float(y.mean()))
    assert s.y_std == pytest.approx(float(y.std(unbiased=True)))
    z = s.transform_y(data.train.y)
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(s.inverse_y(z), data.train.y)
    # a label-noise variance (and eps, and a cutoff threshold) scale by 1/s_y^2
    assert s.transform_variance(4.0) == pytest.approx(4.0 / s.y_std**2)
    x = s.transform_x(data.train.x)
    torch.testing.assert_close(x.mean(0), torch.zeros(3), atol=1e-5, rtol=0)


def test_standardizer_images_one_scalar_over_pixels():
    g = torch.Generator().manual_seed(1)
    img = lambda k: torch.randint(0, 256, (k, 8, 8, 3), dtype=torch.uint8, generator=g)  # noqa: E731
    data = RegressionData(
        name="i", kind="image", train=Split(img(20), torch.rand(20)), val=Split(img(2), torch.rand(2)),
        test=Split(img(3), torch.rand(3)),
    )
    s = Standardizer.fit(data)
    pixels = data.train.x.double() / 255
    assert float(s.x_mean) == pytest.approx(float(pixels.mean()), rel=1e-6)
    assert float(s.x_std) == pytest.approx(float(pixels.std(unbiased=False)), rel=1e-5)
    out = s.transform_x(data.test.x)
    assert out.shape == (3, 3, 8, 8) and out.dtype == torch.float32 and out.is_contiguous()
    want = (data.test.x.permute(0, 3, 1, 2).double() / 255 - float(s.x_mean)) / float(s.x_std)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    assert data.input_shape == (3, 8, 8)


def test_standardizer_round_trip_and_constant_columns():
    data = _tabular()
    x = data.train.x.clone()
    x[:, 1] = 7.0
    data = RegressionData(name="t", kind="tabular", train=Split(x, data.train.y), val=data.val, test=data.test)
    s = Standardizer.fit(data)
    assert float(s.x_std[1]) == 1.0  # a constant column is left as it is, not divided by 0
    back = Standardizer.from_dict(s.to_dict())
    torch.testing.assert_close(back.transform_x(x), s.transform_x(x))
    assert back.y_std == s.y_std


def test_unknown_dataset_lists_choices_and_permutation_is_stable():
    with pytest.raises(ValueError, match="valid datasets: .*wine"):
        load_dataset("mnist")
    a, b = seeded_permutation(10, 3), seeded_permutation(10, 3)
    assert (a == b).all() and sorted(a.tolist()) == list(range(10))
    assert (seeded_permutation(10, 4) != a).any()
