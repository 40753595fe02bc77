"""The training objectives against analytic references: oracle networks make each sampler land
exactly on the target, losses equal their formulas computed by hand; the consistency correction."""

import numpy as np
import pytest
import torch

from core.errors import ValidationError
from core.model.objectives import (OBJECTIVES, TRAIN_TIMESTEPS, DiffusionObjective, FlowObjective,
                                   RefineObjective, RegressionObjective, make_objective)
from core.model.consistency import consistency_gain, ratio_correct

SHAPE = (3, 12, 8, 8)


def _latents(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(SHAPE, generator=g) * 1.6 - 0.8   # inside the bounded range
    src = torch.rand(SHAPE, generator=g) * 1.6 - 0.8
    noise = torch.randn(SHAPE, generator=g)
    return x0, src, noise


def _v_oracle(objective, target):
    """The exact v-prediction of a known clean latent: v = sqrt(a) eps - sqrt(1 - a) x0."""
    alphas = objective.scheduler().alphas_cumprod

    def net(x, t):
        a = alphas[t.long()].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * target) / (1 - a).sqrt().clamp(min=1e-8)
        return a.sqrt() * eps - (1 - a).sqrt() * target
    return net


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_flow_euler_steps_land_on_the_target_with_the_true_velocity(steps):
    obj = FlowObjective(source_noise=0.5)
    x0, src, noise = _latents()

    def net(x, t):  # on the straight path x_s = s source + (1 - s) x0 the velocity is (x_s - x0) / s
        s = (t / TRAIN_TIMESTEPS).view(-1, 1, 1, 1)
        return (x - x0) / s

    out = obj.sample(net, src, noise, steps, None, obj.scheduler().config, bounded=True)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_ddim_with_the_exact_v_lands_on_the_target(steps):
    obj = DiffusionObjective()
    x0, src, noise = _latents(1)
    out = obj.sample(_v_oracle(obj, x0), src, noise, steps, "ddim", obj.scheduler().config, bounded=True)
    # the last DDIM step ends at alpha_bar[0] (not 1): a residual of sqrt(1 - alpha_bar[0]) ~ 5e-3 of noise
    torch.testing.assert_close(out, x0, atol=0.03, rtol=0)


def test_refine_adds_the_sampled_residual_to_the_mean_pass():
    obj = RefineObjective(residual_scale=0.1)
    x0, src, noise = _latents(2)
    mean = x0 + 0.05 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    residual = (x0 - mean) / obj.residual_scale
    v = _v_oracle(obj, residual)
    calls = []

    def net(x, t):
        calls.append(int(t[0]))
        if int(t[0]) == obj.MEAN_TIMESTEP:
            assert torch.count_nonzero(x) == 0  # the mean pass sees a zero latent
            return mean
        return v(x, t)

    out = obj.sample(net, src, noise, 4, "ddim", obj.scheduler().config, bounded=True)
    torch.testing.assert_close(out, x0, atol=0.03 * obj.residual_scale + 1e-6, rtol=0)
    assert calls[0] == obj.MEAN_TIMESTEP and len(calls) == obj.evaluations(4) == 5


@pytest.mark.parametrize("relative", [False, True])
def test_refine_at_zero_steps_is_its_mean_pass_alone(relative):
    obj = RefineObjective(residual_scale=0.1, relative=relative)
    x0, src, noise = _latents(4)
    calls = []

    def net(x, t):
        calls.append(int(t[0]))
        assert torch.count_nonzero(x) == 0
        return 0.5 * x0

    out = obj.sample(net, src, noise, 0, None, obj.scheduler().config, bounded=True)
    expected = (src + 0.5 * x0).clamp(-1.0, 1.0) if relative else 0.5 * x0  # no residual, whatever the noise
    torch.testing.assert_close(out, expected)
    assert calls == [obj.MEAN_TIMESTEP] and obj.evaluations(0) == 1


@pytest.mark.parametrize("name", ["diffusion", "flow", "regression"])
def test_zero_steps_are_refused_where_there_is_no_mean_pass(name):
    with pytest.raises(ValidationError, match="needs at least 1.*refine"):
        make_objective({"name": name}).check_steps(0, "steps")
    assert make_objective({"name": "refine"}).check_steps(0, "steps") == 0


def test_losses_equal_their_formulas():
    x0, src, noise = _latents(4)
    u = torch.tensor([0.0, 0.37, 0.999])
    g = torch.Generator().manual_seed(5)
    weight = torch.randn(SHAPE[1], SHAPE[1], generator=g) * 0.1

    def net(x, t):  # any fixed function of (x, t)
        return torch.einsum("bchw,cd->bdhw", x, weight) + 1e-3 * t.float().view(-1, 1, 1, 1)

    obj = DiffusionObjective()
    alphas = obj.scheduler().alphas_cumprod
    t = (u * TRAIN_TIMESTEPS).long()
    a = alphas[t].view(-1, 1, 1, 1)
    noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    torch.testing.assert_close(obj.loss(net, x0, src, noise, u), ((net(noisy, t) - v) ** 2).mean())

    flow = FlowObjective(source_noise=0.5)
    source = src + 0.5 * noise
    s = u.view(-1, 1, 1, 1)
    x = s * source + (1 - s) * x0
    torch.testing.assert_close(flow.loss(net, x0, src, noise, u),
                               ((net(x, u * TRAIN_TIMESTEPS) - (source - x0)) ** 2).mean())

    reg = RegressionObjective()
    zero_t = torch.zeros(3, dtype=torch.long)
    torch.testing.assert_close(reg.loss(net, x0, src, noise, u), ((net(torch.zeros_like(x0), zero_t) - x0) ** 2).mean())

    ref = RefineObjective(residual_scale=0.1)
    mu = net(torch.zeros_like(x0), torch.full((3,), ref.MEAN_TIMESTEP))
    r = (x0 - mu) / 0.1
    noisy_r = a.sqrt() * r + (1 - a).sqrt() * noise
    v_r = a.sqrt() * noise - (1 - a).sqrt() * r
    torch.testing.assert_close(ref.loss(net, x0, src, noise, u),
                               ((mu - x0) ** 2).mean() + 0.01 * ((net(noisy_r, t) - v_r) ** 2).mean())


def test_registry_builds_objectives_from_their_recorded_params():
    for name in OBJECTIVES:
        obj = make_objective(name)
        again = make_objective(obj.params())
        assert type(again) is type(obj) and again.params() == obj.params()
    assert make_objective({"name": "refine", "residual_scale": 0.2}).residual_scale == 0.2
    with pytest.raises(ValidationError, match="objective 'ddpm'"):
        make_objective("ddpm")
    with pytest.raises(ValidationError, match="bad parameters"):
        make_objective({"name": "flow", "residual_scale": 1.0})
    with pytest.raises(ValidationError, match="does not apply"):
        FlowObjective().check_sampler("ddim")
    assert not RegressionObjective.stochastic and RegressionObjective().evaluations(30) == 1


def test_a_relative_objective_learns_the_change_from_the_input_and_adds_the_input_back():
    x0, src, noise = _latents(6)
    u = torch.tensor([0.1, 0.5, 0.9])
    g = torch.Generator().manual_seed(7)
    weight = torch.randn(SHAPE[1], SHAPE[1], generator=g) * 0.1

    def net(x, t):
        return torch.einsum("bchw,cd->bdhw", x, weight) + 1e-3 * t.float().view(-1, 1, 1, 1)

    for name in ("regression", "diffusion", "refine"):
        plain, relative = make_objective(name), make_objective({"name": name, "relative": True})
        # the loss is the plain objective's on the change x0 - src
        torch.testing.assert_close(relative.loss(net, x0, src, noise, u), plain.loss(net, x0 - src, src, noise, u))
        assert make_objective(relative.params()).relative and "relative" not in plain.params()
    # an oracle that outputs the change makes a relative regression land on the target
    reg = RegressionObjective(relative=True)
    out = reg.sample(lambda x, t: x0 - src, src, noise, 1, None, {}, bounded=False)
    torch.testing.assert_close(out, x0)
    # the exact v of the change makes relative DDIM land on the target; the change spans [-1.6, 1.6],
    # beyond the bounded range a target latent has, and must not be clipped before the input is added
    diff = DiffusionObjective(relative=True)
    out = diff.sample(_v_oracle(diff, x0 - src), src, noise, 4, "ddim", diff.scheduler().config, bounded=True)
    torch.testing.assert_close(out, x0, atol=0.03, rtol=0)
    assert (x0 - src).abs().max() > 1.0
    with pytest.raises(ValidationError, match="no relative form"):
        make_objective({"name": "flow", "relative": True})


def test_ratio_correction_pins_the_weighted_sum_to_the_input_and_keeps_the_shares():
    rng = np.random.default_rng(0)
    images = rng.random((5, 6, 6, 3)).astype(np.float32)
    irradiance = rng.random((5, 3)) + 0.5
    flat = rng.random((6, 6, 3)).astype(np.float32) + 0.1
    fixed = ratio_correct(images, irradiance, flat)
    np.testing.assert_allclose(np.einsum("nhwc,nc->hwc", fixed, irradiance), flat, rtol=1e-5)
    np.testing.assert_allclose(fixed[0] / fixed[1], images[0] / images[1], rtol=1e-5)
    # where the predictions sum to (almost) nothing the gain stays 1 instead of exploding
    images[:, 0, 0] = 0.0
    assert np.all(consistency_gain(images, irradiance, flat)[0, 0] == 1.0)
