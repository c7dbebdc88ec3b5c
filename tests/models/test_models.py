"""Models: shapes, heads, parameter counts against the original architectures, FDS slot, training."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from hetreg.losses import gaussian_nll_loss, mse_loss, positive_variance
from hetreg.models import (
    FDS,
    RegressionHead,
    build_model,
    inverse_positive_variance,
    model_names,
    pooling_plan,
)

IMAGE_CASES = [("cnn", 32, {}), ("cnn", 64, {}), ("cnn", 200, {}), ("resnet18", 64, {}),
               ("resnet18", 32, {"small_input": True})]
ALL_CASES = [("mlp", (11,), {"preset": "wine"}), ("mlp", (19,), {"preset": "bike"}),
             ("mlp", (5,), {"hidden": (8, 4), "dropout": 0.1})] + [
    (name, (3, s, s), opts) for name, s, opts in IMAGE_CASES
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP spinning makes 2 threads far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ids(case) -> str:
    name, shape, opts = case
    return f"{name}-{'x'.join(map(str, shape))}-{'-'.join(f'{k}={v}' for k, v in opts.items()) or 'default'}"


def test_names() -> None:
    assert model_names() == ["cnn", "mlp", "resnet18"]


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids)
def test_output_shapes_for_both_heads(case) -> None:
    name, shape, opts = case
    out_dim = 3 if name != "resnet18" else 1  # several targets on the cheap models
    torch.manual_seed(0)
    x = torch.randn(3, *shape)
    model = build_model(name, shape, out_dim=out_dim, **opts).eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, out_dim)
    assert model.features(x).shape == (3, model.num_features)
    mv = build_model(name, shape, head="mean_var", out_dim=out_dim, **opts).eval()
    mean, var = mv(x)
    assert mean.shape == (3, out_dim) and var.shape == (3, out_dim)
    assert (var > 0).all()
    # the variance is positive_variance of the raw second half of the last layer (independent path)
    raw = mv.head.linear(mv.features(x))
    torch.testing.assert_close(mean, raw[:, :out_dim])
    torch.testing.assert_close(var, positive_variance(raw[:, out_dim:], kind="softplus", floor=1e-6))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _linear(i: int, o: int) -> int:
    return i * o + o


def test_mlp_presets_match_the_original_models() -> None:
    wine = build_model("mlp", (11,), preset="wine")
    widths = [11, 100, 50, 20, 10]
    expected = sum(_linear(a, b) + 2 * b for a, b in zip(widths, widths[1:])) + _linear(10, 1)  # + BatchNorm
    assert _count(wine) == expected == 7851
    kinds = [type(m).__name__ for m in wine.body]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 4
    bike = build_model("mlp", (19,), preset="bike")
    widths = [19, 100, 50, 20, 10]
    assert _count(bike) == sum(_linear(a, b) for a, b in zip(widths, widths[1:])) + _linear(10, 1)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in bike.modules())
    # explicit options override a preset
    wd = build_model("mlp", (11,), preset="wine", dropout=0.2)
    assert sum(isinstance(m, nn.Dropout) for m in wd.modules()) == 4
    linear = build_model("mlp", (4,), hidden=())
    assert linear.num_features == 4 and _count(linear) == 5


def test_cnn_at_200px_is_the_original_age_model() -> None:
    model = build_model("cnn", (3, 200, 200))
    assert model.num_features == 256 * 3 * 3 == 2304
    ch = [3, 10, 20, 32, 64, 128, 256]
    conv_bn = sum(a * b * 9 + b + 2 * b for a, b in zip(ch, ch[1:]))
    assert _count(model) == conv_bn + _linear(2304, 1)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 6


@pytest.mark.parametrize("h, w", [(200, 200), (64, 64), (32, 32), (33, 47), (100, 64), (8, 8), (1, 5)])
def test_pooling_plan_matches_real_pooling(h: int, w: int) -> None:
    pools, final = pooling_plan(h, w, 6)
    x = torch.zeros(1, 1, h, w)
    for do_pool in pools:
        if do_pool:
            x = nn.functional.max_pool2d(x, 2)
    assert tuple(x.shape[2:]) == final
    assert min(final) >= 1
    assert pools == tuple(True for _ in pools) or min(final) == 1


def test_cnn_sizes() -> None:
    assert build_model("cnn", (3, 64, 64)).num_features == 256
    m32 = build_model("cnn", (3, 32, 32))
    assert m32.num_features == 256 and sum(isinstance(m, nn.MaxPool2d) for m in m32.modules()) == 5


def test_resnet18_parameter_count() -> None:
    # torchvision resnet18 has 11,689,512 parameters with its 1000-way fc (512*1000 + 1000)
    backbone = 11_689_512 - _linear(512, 1000)
    assert _count(build_model("resnet18", (3, 64, 64))) == backbone + _linear(512, 1)
    small = build_model("resnet18", (3, 64, 64), small_input=True)
    assert _count(small) == backbone + _linear(512, 1) - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    assert build_model("resnet18", (3, 200, 200)).num_features == 512


def test_eval_mode_prediction_does_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", (3, 32, 32))
    model.train()
    model(torch.randn(16, 3, 32, 32))  # move the BatchNorm running statistics
    model.eval()
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(model(x)[:1], model(x[:1]))


# -- heads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softplus", "exp"])
@pytest.mark.parametrize("v", [1e-3, 0.5, 1.0, 30.0])
def test_inverse_positive_variance_round_trip(kind: str, v: float) -> None:
    r = inverse_positive_variance(v, kind=kind, floor=1e-6)
    back = positive_variance(torch.tensor(r, dtype=torch.float64), kind=kind, floor=1e-6)
    assert float(back) == pytest.approx(v, rel=1e-9)


@pytest.mark.parametrize("kind", ["softplus", "exp"])
def test_head_starts_at_init_var(kind: str) -> None:
    head = RegressionHead(6, 2, "mean_var", variance=kind, var_floor=1e-4, init_var=2.5)
    with torch.no_grad():
        head.linear.weight.zero_()
    mean, var = head(torch.randn(4, 6))
    torch.testing.assert_close(var, torch.full((4, 2), 2.5))
    torch.testing.assert_close(mean, head.linear.bias[:2].expand(4, 2))


def test_head_gradcheck() -> None:
    torch.manual_seed(0)
    head = RegressionHead(4, 2, "mean_var", variance="softplus").double()
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch.cat(head(t), dim=1), (z,))


def test_exp_variance_option() -> None:
    model = build_model("mlp", (3,), head="mean_var", variance="exp", var_floor=1e-3).eval()
    x = torch.randn(4, 3)
    raw = model.head.linear(model.features(x))
    torch.testing.assert_close(model(x)[1], torch.exp(raw[:, 1:]) + 1e-3)


# -- errors ------------------------------------------------------------------------------------------


def test_errors_name_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid models: cnn, mlp, resnet18"):
        build_model("vgg", (3, 32, 32))
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth.*valid options:.*small_input"):
        build_model("resnet18", (3, 32, 32), depth=34)
    with pytest.raises(ValueError, match="valid choices: mean, mean_var"):
        build_model("cnn", (3, 32, 32), head="quantile")
    with pytest.raises(ValueError, match="unknown mlp preset 'boston'; valid choices: wine, bike"):
        build_model("mlp", (11,), preset="boston")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_model("cnn", (32, 32))
    with pytest.raises(ValueError, match=r"'mlp' takes \(d,\) for tabular data, but the data is image .* use a model for image data \(cnn or resnet18\)"):
        build_model("mlp", (3, 8, 8))
    with pytest.raises(ValueError, match=r"'cnn' takes \(C, H, W\).* the data is tabular .*\(mlp\)"):
        build_model("cnn", (11,))
    with pytest.raises(ValueError, match="out_dim"):
        build_model("mlp", (3,), out_dim=0)


def test_wrong_input_layout_is_explained() -> None:
    model = build_model("cnn", (3, 32, 32))
    with pytest.raises(ValueError, match="transform_x"):
        model(torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\(N, 11\)"):
        build_model("mlp", (11,))(torch.zeros(2, 12))


# -- FDS slot ----------------------------------------------------------------------------------------


class RecordingFDS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], int | None]] = []
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, features, labels, epoch):
        self.calls.append((tuple(features.shape), epoch))
        return features * self.scale


def test_fds_sits_between_features_and_head() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (5,), hidden=(8, 4))
    fds = RecordingFDS()
    model.attach_fds(fds)
    assert "fds.scale" in model.state_dict()
    x, y = torch.randn(6, 5), torch.randn(6)
    model.train()
    out = model(x, y, epoch=3)
    assert fds.calls == [((6, 4), 3)]
    torch.testing.assert_close(out, model.head(model.features(x) * 2.0))
    model(x)  # no labels: no FDS
    model.eval()
    model(x, y, epoch=3)  # eval: no FDS
    assert len(fds.calls) == 1
    model.attach_fds(None)
    assert model.fds is None


def test_real_fds_module_trains_inside_a_model() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", (3, 32, 32))
    model.attach_fds(FDS(feature_dim=model.num_features, bucket_num=10, kernel="gaussian", start_smooth=1))
    x, y = torch.randn(12, 3, 32, 32), torch.randint(0, 10, (12,)).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(2):
        model.train()
        loss = mse_loss(model(x, y, epoch).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.fds.update(model.features(x), y)
        model.fds.end_epoch()
    assert torch.isfinite(loss)


# -- a few training steps on CPU ---------------------------------------------------------------------

TRAIN_CASES = [("mlp", (11,), {"preset": "wine"}), ("mlp", (19,), {"preset": "bike"}),
               ("cnn", (3, 32, 32), {}), ("cnn", (3, 64, 64), {}), ("resnet18", (3, 64, 64), {})]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=_ids)
@pytest.mark.parametrize("head", ["mean", "mean_var"])
def test_a_few_steps_reduce_the_loss(case, head: str) -> None:
    name, shape, opts = case
    torch.manual_seed(0)
    n = 8
    x = torch.randn(n, *shape)
    y = torch.randn(n, 1)
    model = build_model(name, shape, head=head, **opts)
    model.train()
    # Adam moves every weight by about lr at once; ResNet-18's 11M weights need a smaller step
    opt = torch.optim.Adam(model.parameters(), lr=1e-4 if name == "resnet18" else 1e-3)

    def loss_fn() -> torch.Tensor:
        out = model(x)
        if head == "mean":
            return mse_loss(out, y)
        mean, var = out
        return gaussian_nll_loss(mean, var, y)

    first = None
    for _ in range(6):
        loss = loss_fn()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = float(loss_fn().detach())  # still in train mode: the same BatchNorm batch statistics as the steps
    assert math.isfinite(last) and last < first


def _reference_mlp(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The MLP through its modules one by one (nn.Linear, nn.BatchNorm1d, nn.ReLU), row-major."""
    return model.head(_features(model, x))


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
@pytest.mark.parametrize("options", [{"preset": "wine"}, {"preset": "bike"}, {"hidden": []}])
def test_feature_major_mlp_pass_equals_the_modules(options, momentum) -> None:
    # float64: the two passes differ only by rounding; both modes, running statistics, gradients
    torch.manual_seed(3)
    model = build_model("mlp", (7,), **options).double()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = momentum
    ref = copy.deepcopy(model)
    x = torch.randn(33, 7, dtype=torch.float64)
    for _ in range(3):  # training steps: batch statistics, running statistics, counters
        out, expected = model(x), _reference_mlp(ref, x)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        out.square().sum().backward()
        expected.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-12, msg=name)
    model.eval(), ref.eval()
    torch.testing.assert_close(model(x[:5]), _reference_mlp(ref, x[:5]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.features(x), _features(ref, x), rtol=1e-12, atol=1e-12)


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = x
    for module in model.body:
        h = module(h)
    return h


def test_mlp_body_follows_changes_of_its_layers() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (4,), hidden=[6])
    x = torch.randn(10, 4)
    model.body.append(nn.Dropout(0.5))  # not a plain MLP any more: the modules run one by one
    model.train()
    torch.manual_seed(1)
    out = model(x)
    torch.manual_seed(1)
    assert torch.equal(out, model.head(nn.Sequential.forward(model.body, x)))
    del model.body[-1]
    model.eval()
    torch.testing.assert_close(model(x), _reference_mlp(model, x))
