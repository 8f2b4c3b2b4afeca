"""Competitive rules against straightforward NumPy implementations, and their experiments run by papermill."""
import json

import numpy as np
import pytest
import torch
from conftest import reprlab

from reprlab.competitive import DreamComp, KrotovHopfield, dreamcomp_step, dreamcomp_step_numpy, kh_step, kh_step_numpy


def _dreamcomp_numpy_loop(W, v, xi, zeta):
    "The update once more, one neuron at a time, as the equations read (independent of both implementations)."
    wv = W @ v.T
    win = wv.argmax(0)
    W_new = W.copy()
    for n in set(win.tolist()):
        won = np.flatnonzero(win == n)
        W_new[n] += xi * (v[won].mean(0) - wv[n, won].mean() * W[n] / zeta)
    return W_new, win


@pytest.mark.parametrize('N, L, C, B, steps', [(10, 20, 3, 8, 15), (50, 64, 10, 100, 10), (7, 5, 2, 40, 25)])
def test_dreamcomp_step_matches_numpy(N, L, C, B, steps):
    rng = np.random.default_rng(N * 1000 + B)
    W0 = rng.random((N, L + C))
    xi = np.r_[np.full(L, 0.02), np.full(C, 0.1)]
    zeta = np.r_[np.ones(L), np.full(C, 5.0)]
    Wn, Wl, Wt = W0.copy(), W0.copy(), torch.tensor(W0, dtype=torch.float32)
    for step in range(steps):
        v = np.c_[rng.random((B, L)), np.eye(C)[rng.integers(0, C, B)]]
        before = Wt.clone()
        wt = dreamcomp_step(Wt, torch.tensor(v, dtype=torch.float32), torch.tensor(xi, dtype=torch.float32),
                            torch.tensor(zeta, dtype=torch.float32)).numpy()
        wn = dreamcomp_step_numpy(Wn, v, xi, zeta)
        Wl, wl = _dreamcomp_numpy_loop(Wl, v, xi, zeta)
        assert (wt == wn).all() and (wn == wl).all(), f'winners differ at step {step}'
        assert np.allclose(Wn, Wl, atol=1e-12)
        assert set((Wt != before).any(1).nonzero().ravel().tolist()) <= set(wn.tolist())
    assert np.allclose(Wt.numpy(), Wn, atol=1e-5), np.abs(Wt.numpy() - Wn).max()


@pytest.mark.parametrize('p, k, delta', [(3.0, 7, 0.4), (2.0, 2, 0.3), (4.5, 3, 0.0)])
def test_kh_step_matches_numpy(p, k, delta):
    rng = np.random.default_rng(int(p * 10) + k)
    Wn = rng.normal(0, 1, (30, 12))
    Wt = torch.tensor(Wn)
    for step in range(12):
        v = rng.random((16, 12))
        a = kh_step(Wt, torch.tensor(v), 0.05, p, k, delta).numpy()
        b = kh_step_numpy(Wn, v, 0.05, p, k, delta)
        assert (a == b).all(), step
        assert np.allclose(Wt.numpy(), Wn, atol=1e-10), step


def test_models_are_seeded_and_check_their_input():
    rng = np.random.default_rng(0)
    X, y = rng.random((200, 16)).astype(np.float32), rng.integers(0, 3, 200)
    a = DreamComp(9, epochs=2, batch_size=10, progress=False, device='cpu').fit(X, y)
    b = DreamComp(9, epochs=2, batch_size=10, progress=False, device='cpu').fit(X, y)
    c = DreamComp(9, epochs=2, batch_size=10, seed=1, progress=False, device='cpu').fit(X, y)
    assert np.array_equal(a.weights, b.weights) and not np.array_equal(a.weights, c.weights)
    with pytest.raises(ValueError, match='has 15 features'):
        a.predict(X[:, :15])
    with pytest.raises(ValueError, match='labels outside the classes'):
        a.partial_fit(X, y + 5)
    with pytest.raises(RuntimeError, match='not fitted'):
        KrotovHopfield(4).transform(X)
    with pytest.raises(ValueError, match='k=9'):
        KrotovHopfield(4, k=9, progress=False).fit(X)


def _run(name, *params):
    r = reprlab('run', name, *[x for kv in params for x in ('-p', *kv)], '--json', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_dreamcomp_experiment_runs(lab):
    out = _run('dreamcomp', ('kx', '4'), ('ky', '5'), ('epochs', '3'), ('n_train', '400'), ('seeds', '2'), ('target_acc', '0.2'))
    m = out['metrics']
    assert 0.2 < m['test_acc'] <= 1 and m['n_units'] == 20 and m['test_acc_std'] >= 0 and m['hopes_total'] == 4
    assert abs(m['r_gain'] - (m['test_acc'] - m['r1_test_acc'])) < 0.2
    figs = {p.name for p in (lab / 'reports' / 'dreamcomp' / out['run_id'] / 'figures').iterdir()}
    assert figs == {'prototypes.png', 'label_synapses.png', 'test_acc_per_epoch.png', 'wins.png'}


def test_kh_readout_experiment_runs(lab):
    out = _run('kh_readout', ('n_units', '100'), ('epochs', '10'), ('readout_epochs', '30'))
    m = out['metrics']
    assert 0.5 < m['test_acc'] <= 1 and m['seconds_per_epoch'] > 0 and 0 < m['raw_logistic_test_acc'] <= 1


def test_bench_competitive_runs(lab):
    out = _run('bench_competitive', ('dataset', 'digits'), ('sizes', '20x10,40x50'), ('repeats', '1'))
    m = out['metrics']
    for size in ('20x10', '40x50'):
        assert m[f'reprlab_s_{size}'] > 0 and m[f'products_s_{size}'] > 0 and m[f'numpy_s_{size}'] > 0
        assert m[f'over_products_{size}'] == pytest.approx(m[f'reprlab_s_{size}'] / m[f'products_s_{size}'])
