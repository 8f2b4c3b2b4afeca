"""Topo SparseDream: the torch rule against an independent NumPy implementation of the equations, and the experiment."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import reprlab

from reprlab.topo import TopoSparseDream, lateral_kernels


def _neighbours(kx, ky, inhibition, ex, outer=None):
    "E and I built with explicit loops over the grid, straight from the definitions."
    N = kx * ky
    E, I = np.zeros((N, N)), np.zeros((N, N))
    for a in range(N):
        ra, ca = divmod(a, ky)
        for b in range(N):
            rb, cb = divmod(b, ky)
            d = max(abs(ra - rb), abs(ca - cb))
            if a == b: continue
            if inhibition == 'line':
                E[a, b] = ra == rb and abs(ca - cb) <= ex
                I[a, b] = ca == cb and abs(ra - rb) <= ex
            else:
                E[a, b] = d <= ex
                if inhibition == 'surround': I[a, b] = ex < d <= (outer or 2 * ex)
    return E, I


def _reference(W, t, X, E, I, xi, gamma, sp, prec, B=1, prune_every=100):
    "The rule as written in the issue; minibatches average the per-sample updates computed from the same state."
    W, t = W.astype(np.float64).copy(), t.astype(np.float64).copy()
    seen = 0
    for i in range(0, len(X), B):
        dW, dt = np.zeros_like(W), np.zeros_like(t)
        batch = X[i:i + B].astype(np.float64)
        for v in batch:
            p = 1 / (1 + np.exp(-(W @ v - t)))
            o = 1 / (1 + np.exp(-(W @ v + E @ p - I @ p - t)))
            r = W.T @ o
            e = v - r
            dW += xi * W * np.outer(o, e / np.maximum(r, prec))
            dt += gamma * (o - sp)
        W += dW / len(batch); t += dt / len(batch)
        before, seen = seen, seen + len(batch)
        if seen // prune_every > before // prune_every: W[W < prec] = 0
    return W, t


@pytest.mark.parametrize('inhibition', ['none', 'surround', 'line'])
def test_kernels_match_the_definitions(inhibition):
    E, I = lateral_kernels(5, 7, 2, inhibition)
    Er, Ir = _neighbours(5, 7, inhibition, 2)
    assert (E == Er).all() and (I == Ir).all()


@pytest.mark.parametrize('inhibition,B', [('none', 1), ('surround', 1), ('line', 1), ('surround', 8)])
def test_model_follows_the_equations_step_for_step(inhibition, B):
    rng = np.random.default_rng(3)
    X = (rng.random((240, 30)) * (rng.random((240, 30)) < 0.3)).astype(np.float32)
    m = TopoSparseDream(4, 5, lr=0.08, sparsity=0.05, homeostasis_rate=0.7, excitation_radius=1, inhibition=inhibition,
                        inhibition_strength=0.6, excitation_strength=0.8, batch_size=B, seed=5, device='cpu')
    m.init_weights(30)
    W0, t0 = m.weights.copy(), m.thresholds.copy()
    E, I = _neighbours(4, 5, inhibition, 1)
    for chunk in (X[:120], X[120:]):          # two calls: the pruning schedule carries over between them
        m.partial_fit(chunk)
    Wr, tr = _reference(W0, t0, X, 0.8 * E, 0.6 * I, 0.08, 0.7, 0.05, 1e-3, B=B)
    assert m.samples_seen_ == 240
    assert np.allclose(m.weights, Wr, atol=2e-5, rtol=1e-4) and np.allclose(m.thresholds, tr, atol=2e-5)
    assert (m.weights >= 0).all() and (m.weights == 0).any() == (Wr == 0).any()


def test_fit_is_seeded_and_refuses_bad_input():
    X = np.random.default_rng(0).random((50, 16)).astype(np.float32)
    a = TopoSparseDream(3, 3, excitation_radius=1, seed=1, device='cpu').fit(X, epochs=2, samples_per_epoch=30, progress=False)
    b = TopoSparseDream(3, 3, excitation_radius=1, seed=1, device='cpu').fit(X, epochs=2, samples_per_epoch=30, progress=False)
    assert np.array_equal(a.weights, b.weights) and [r['samples'] for r in a.history_] == [30, 30]
    with pytest.raises(ValueError, match='NaN'):
        a.partial_fit(np.full((2, 16), np.nan))
    with pytest.raises(ValueError, match=r'\(samples, features\)'):
        a.transform(np.ones(16))
    with pytest.raises(RuntimeError, match='not trained'):
        TopoSparseDream(2, 2, excitation_radius=1).transform(X)


def _run(*params, expect=0, experiment='topo_sparse_dream'):
    r = reprlab('run', experiment, *[x for kv in params for x in ('-p', *kv)], '--json', timeout=600)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_topo_experiment_runs_and_compares(lab):
    out = _run(('epochs', '3'), ('kx', '6'), ('ky', '6'), ('inhibition', 'surround'), ('inhibition_strength', '0.5'))
    m, d = out['metrics'], Path(out['run_dir'])
    for k in ('test_mse', 'mean_activity', 'population_sparseness', 'lifetime_sparseness', 'cofiring', 'topographic_smoothness',
              'probe_acc', 'samples_per_second', 'none_test_mse', 'none_cofiring', 'edge_change_ratio'):
        assert np.isfinite(m[k]), k
    assert 0.5 < m['probe_acc'] <= 1 and 0 < m['test_mse'] < 0.2 and m['hopes_total'] == 4
    figures = {p.stem for p in (d / 'figures').glob('*.png')}
    assert {'features_surround', 'features_none', 'reconstructions_surround', 'thresholds_activity_none', 'training',
            'last_epoch_change', 'activity_stats', 'comparison'} <= figures
    dialog = (d / 'dialog.md').read_text()
    assert f"{m['test_mse']:.4f}" in dialog and f"{m['none_test_mse']:.4f}" in dialog
    # the recorded notebook shows static figures, not widget placeholders
    nb = json.loads((d / 'report.ipynb').read_text())
    mimes = {k for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) for k in o.get('data', {})}
    assert 'image/png' in mimes and 'application/vnd.jupyter.widget-view+json' not in mimes


def test_topo_experiment_refuses_bad_parameters_and_reports_divergence(lab):
    r = reprlab('run', 'topo_sparse_dream', '-p', 'kx', 'six')
    assert r.returncode != 0 and 'kx' in r.stderr and 'int' in r.stderr
    out = _run(('inhibition', 'ring'), ('epochs', '1'), expect=1)
    assert out['status'] == 'failed' and "inhibition='ring'" in out['error']
    out = _run(('lr', '1000'), ('epochs', '2'), ('compare', 'false'), expect=1)
    assert out['status'] == 'failed' and ('diverged' in out['error'] or 'collapsed' in out['error']) and 'lower lr' in out['error']
    assert Path(out['report']).exists()
