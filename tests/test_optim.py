"""Optimizers, clipping and schedules against torch.optim, step by step, on the same gradients."""
import math

import numpy as np
import pytest
import torch

from rnnkit import optim
from rnnkit.module import Module


class Params(Module):
    """Two parameters; gradients are set by hand each step."""

    def __init__(self, rng):
        super().__init__()
        self.add_param("a", rng.standard_normal((3, 4)))
        self.add_param("b", rng.standard_normal(5))


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, eps=1e-6)),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch(name, kw, rng):
    model = Params(rng)
    tparams = [torch.tensor(model.params[k].copy(), requires_grad=True) for k in ("a", "b")]
    ours = getattr(optim, name)(model, **kw)
    theirs = getattr(torch.optim, name)(tparams, **kw, foreach=False)
    for step in range(25):
        grads = [rng.standard_normal(p.shape) for p in tparams]
        model.grads["a"][...], model.grads["b"][...] = grads
        for p, g in zip(tparams, grads):
            p.grad = torch.from_numpy(g.copy())
        if step == 10:                                 # a schedule changes lr between steps
            ours.lr = kw["lr"] * 0.5
            for group in theirs.param_groups:
                group["lr"] = kw["lr"] * 0.5
        ours.step()
        theirs.step()
        for k, p in zip(("a", "b"), tparams):
            err = np.abs(model.params[k] - p.detach().numpy()).max()
            assert err < 1e-12, f"{name} {kw}: parameter {k} differs by {err} at step {step + 1}"


def test_adam_keeps_the_original_signature():
    model = Params(np.random.default_rng(0))
    opt = optim.Adam(model, 0.1)
    model.grads["a"][...] = 1.0
    before = model.params["a"].copy()
    opt.step()
    np.testing.assert_allclose(model.params["a"], before - 0.1, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("RMSprop", dict(centered=True, momentum=0.3)),
                                     ("Adam", {}), ("AdamW", {})])
def test_state_dict_resumes_exactly(name, kw, rng):
    def run(split):
        model = Params(np.random.default_rng(1))
        opt = getattr(optim, name)(model, **kw)
        grads = np.random.default_rng(2)
        for step in range(12):
            if step == split:                          # "restart": new optimizer from the saved state
                state = opt.state_dict()
                opt = getattr(optim, name)(model, **kw)
                opt.load_state_dict(state)
            for k in ("a", "b"):
                model.grads[k][...] = grads.standard_normal(model.params[k].shape)
            opt.step()
        return model.params["a"].copy()

    assert np.array_equal(run(split=None), run(split=5))


def test_state_dict_rejects_other_optimizers(rng):
    model = Params(rng)
    with pytest.raises(ValueError, match="optimizer state is for 'SGD', not Adam"):
        optim.Adam(model).load_state_dict(optim.SGD(model).state_dict())


def test_clipping_matches_torch(rng):
    model = Params(rng)
    for max_norm in (0.5, 1e6):
        grads = [rng.standard_normal(model.params[k].shape) * 3 for k in ("a", "b")]
        model.grads["a"][...], model.grads["b"][...] = grads
        tp = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for p, g in zip(tp, grads):
            p.grad = torch.from_numpy(g.copy())
        norm = optim.clip_grad_norm(model, max_norm)
        tnorm = torch.nn.utils.clip_grad_norm_(tp, max_norm)
        assert abs(norm - tnorm.item()) < 1e-12
        for k, p in zip(("a", "b"), tp):
            np.testing.assert_allclose(model.grads[k], p.grad.numpy(), rtol=1e-14, atol=0)
    model.grads["a"][...] = rng.standard_normal((3, 4)) * 3
    t = torch.zeros((3, 4), dtype=torch.float64, requires_grad=True)
    t.grad = torch.from_numpy(model.grads["a"].copy())
    optim.clip_grad_value(model, 0.7)
    torch.nn.utils.clip_grad_value_([t], 0.7)
    assert np.array_equal(model.grads["a"], t.grad.numpy())


def _torch_lrs(make_scheduler, steps, lr):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_step_decay_matches_steplr():
    ours = optim.StepDecay(0.5, step_size=7, gamma=0.3)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.3), 40, 0.5)
    np.testing.assert_allclose([ours(t) for t in range(40)], theirs, rtol=1e-12)


def test_step_decay_zaremba_schedule():
    s = optim.StepDecay(1.0, step_size=10, gamma=0.5, first=40)   # 10 steps an epoch, halve after epoch 4
    assert [s(t) for t in (0, 39, 40, 49, 50, 129)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.5 ** 9]


def test_cosine_matches_cosineannealinglr():
    ours = optim.Cosine(0.1, T_max=30, eta_min=0.001)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.001), 31, 0.1)
    np.testing.assert_allclose([ours(t) for t in range(31)], theirs, rtol=1e-9)
    assert ours(100) == 0.001
    warm = optim.Cosine(1.0, T_max=10, warmup=4)
    assert [warm(t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0] and math.isclose(warm(10), 0.0, abs_tol=1e-15)


def test_bad_hyperparameters_name_the_value():
    model = Params(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"lr must be a finite number >= 0, got -1"):
        optim.SGD(model, lr=-1)
    with pytest.raises(ValueError, match=r"betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"):
        optim.Adam(model, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        optim.SGD(model, nesterov=True)
    with pytest.raises(ValueError, match="step_size must be a positive integer, got 0"):
        optim.StepDecay(0.1, 0)
