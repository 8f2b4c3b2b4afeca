"""Temperature measurement and ActCooLR against direct computations; the actcoolr experiment by papermill."""
import json
import math

import numpy as np
import pytest
import torch
from conftest import reprlab
from scipy.special import erfinv
from torch import nn

from reprlab.temperature import ActCooLR, TemperatureMeter, fit_measured, lr_range, temperature


def test_p_same_matches_a_direct_numpy_computation():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    W = [p.detach().numpy().astype(np.float64).copy() for p in net.parameters()]
    meter = TemperatureMeter(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    with meter.recording(): loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward()
    grads = [p.grad.numpy().astype(np.float64) for p in net.parameters()]
    opt.step()
    p_same = meter.measure(x)

    def patterns(params):
        w1, b1, w2, b2 = params[:4]
        h1 = x.numpy() @ w1.T + b1
        h2 = np.maximum(h1, 0) @ w2.T + b2
        return h1 > 0, h2 > 0
    before, after = patterns(W), patterns([w - 0.5 * g for w, g in zip(W, grads)])
    expected = {'1': (before[0] == after[0]).all(1).mean(), '3': (before[1] == after[1]).all(1).mean()}
    assert p_same == pytest.approx(expected, abs=1e-12)
    assert 0 < expected['1'] < 1                                # the step did flip some patterns
    assert meter.temperatures(p_same)['1'] == pytest.approx(-math.log2(expected['1']))


def _dropout_bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 16), nn.ReLU(),
                         nn.Dropout(0.3), nn.Linear(16, 3))


def test_measuring_does_not_change_training():
    X, y = torch.randn(96, 1, 8, 8), torch.randint(0, 3, (96,))
    states = []
    for every in (0, 1, 3):
        net = _dropout_bn_net()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        torch.manual_seed(123)                                   # dropout draws from the global generator
        h = fit_measured(net, X, y, opt, epochs=3, batch_size=16, every=every, progress=False)
        states.append((net.state_dict(), torch.get_rng_state()))
        assert (h['p_change'].notna().sum() if 'p_change' in h else 0) == (0 if every == 0 else len(range(0, 18, every)))
    for sd, rng in states[1:]:
        assert all(torch.equal(states[0][0][k], v) for k, v in sd.items())       # weights and batch-norm statistics
        assert torch.equal(states[0][1], rng)                                    # and the random state


def test_lr_range_restores_state_and_rises():
    net = _dropout_bn_net()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    df = lr_range(net, nn.functional.cross_entropy, x, y)
    assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items())
    assert len(df) == 25 and df.index[0] == pytest.approx(1e-4) and df.index[-1] == pytest.approx(1e2)
    assert df['mean'].iloc[:5].mean() < df['mean'].iloc[-5:].mean()


def test_actcoolr_static_follows_its_formula_over_a_run():
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.2)
    sched = ActCooLR(opt, total_steps=50, t0=1.5, sigma=0.8, gamma=2.0, every=5)
    rng = np.random.default_rng(0)
    lr, p_now = 0.2, None
    for step in range(50):
        p = float(rng.uniform(0.05, 0.9)) if step % 5 == 0 else None
        sched.step(p)
        if p is not None: p_now = p
        s = step / 50
        p_t = min(max(1 - 2 ** (-1.5 * (1 - s) ** 2), 1e-6), 1 - 1e-6)
        b = np.log(lr) - 0.8 * np.sqrt(2) * erfinv(2 * p_now - 1)
        lr = lr + (np.exp(0.8 * np.sqrt(2) * erfinv(2 * p_t - 1) + b) - lr) / 5
        assert sched.get_last_lr()[0] == pytest.approx(lr, rel=1e-9), step
        assert opt.param_groups[0]['lr'] == pytest.approx(lr, rel=1e-9)


def test_actcoolr_rejects_bad_settings():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match='too hot'):
        ActCooLR(opt, 10, t0=20.0, sigma=1.0).step(0.001)
    with pytest.raises(ValueError, match="variant='fast'"):
        ActCooLR(opt, 10, t0=1.0, variant='fast')
    with pytest.raises(ValueError, match='no nn.ReLU modules'):
        TemperatureMeter(nn.Linear(3, 2))
    assert temperature(0.0, 64) == 6.0


def test_actcoolr_experiment_runs(lab):
    r = reprlab('run', 'actcoolr', '-p', 'epochs', '2', '-p', 'n_train', '320', '-p', 'every', '2', '-p', 'width', '8', '--json',
                timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    m = out['metrics']
    for name in ('constant', 'step', 'onecycle', 'actcoolr'): assert 0 <= m[f'test_acc_{name}'] <= 1
    assert m['sigma'] > 0 and m['t0'] > 0 and m['measure_overhead'] > 1 and m['hopes_total'] == 4
    figs = {p.name for p in (lab / 'reports' / 'actcoolr' / out['run_id'] / 'figures').iterdir()}
    assert figs == {'range_analysis.png', 'temperature_heatmaps.png', 'training_curves.png'}
