"""Topo SparseDream: the torch rule against an independent NumPy implementation of the equations, and the experiments
(the study preset end to end, divergence, constraints, the benchmark) run by `reprlab run` with tiny parameters."""
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


def _reference(W, t, chunks, E, I, xi, gamma, sp, prec, B=1, prune_every=100, schedule='running'):
    """The rule as written in the issue; minibatches average the per-sample updates computed from the same state.
    Pruning: 'running' after every prune_every-th sample seen; 'epoch' (the study's) whenever a position i of the pass
    (each chunk is a pass) with i % prune_every == 0 has just been learned."""
    W, t = W.astype(np.float64).copy(), t.astype(np.float64).copy()
    seen = 0
    for X in chunks:
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
            if schedule == 'running': prune = seen // prune_every > before // prune_every
            else: prune = any(j % prune_every == 0 for j in range(i, i + len(batch)))
            if prune: W[W <= prec] = 0
    return W, t


@pytest.mark.parametrize('inhibition', ['none', 'surround', 'line'])
def test_kernels_match_the_definitions(inhibition):
    E, I = lateral_kernels(5, 7, 2, inhibition)
    Er, Ir = _neighbours(5, 7, inhibition, 2)
    assert (E == Er).all() and (I == Ir).all()


@pytest.mark.parametrize('inhibition,B,schedule', [('none', 1, 'running'), ('surround', 1, 'running'), ('line', 1, 'running'),
                                                   ('surround', 8, 'running'), ('none', 1, 'epoch'), ('surround', 8, 'epoch')])
def test_model_follows_the_equations_step_for_step(inhibition, B, schedule):
    rng = np.random.default_rng(3)
    X = (rng.random((240, 30)) * (rng.random((240, 30)) < 0.3)).astype(np.float32)
    m = TopoSparseDream(4, 5, lr=0.08, sparsity=0.05, homeostasis_rate=0.7, excitation_radius=1, inhibition=inhibition,
                        inhibition_strength=0.6, excitation_strength=0.8, batch_size=B, prune_schedule=schedule,
                        init_low=0.01, init_high=0.3, seed=5, device='cpu')
    m.init_weights(30)
    W0, t0 = m.weights.copy(), m.thresholds.copy()
    assert W0.min() >= 0.01 and W0.max() < 0.3
    E, I = _neighbours(4, 5, inhibition, 1)
    chunks = (X[:120], X[120:])
    for chunk in chunks:                      # two calls: the running count carries over, the epoch count restarts
        m.partial_fit(chunk)
    Wr, tr = _reference(W0, t0, chunks, 0.8 * E, 0.6 * I, 0.08, 0.7, 0.05, 1e-3, B=B, schedule=schedule)
    assert m.samples_seen_ == 240
    assert np.allclose(m.weights, Wr, atol=2e-5, rtol=1e-4) and np.allclose(m.thresholds, tr, atol=2e-5)
    assert (m.weights >= 0).all() and (m.weights == 0).any() == (Wr == 0).any()


def test_fit_is_seeded_and_refuses_bad_input():
    X = np.random.default_rng(0).random((50, 16)).astype(np.float32)
    a = TopoSparseDream(3, 3, excitation_radius=1, epochs=2, samples_per_epoch=30, seed=1, device='cpu', progress=False).fit(X)
    b = TopoSparseDream(3, 3, excitation_radius=1, epochs=2, samples_per_epoch=30, seed=1, device='cpu', progress=False).fit(X)
    assert np.array_equal(a.weights, b.weights) and [r['samples'] for r in a.history_] == [30, 30]
    with pytest.raises(ValueError, match='NaN'):
        a.partial_fit(np.full((2, 16), np.nan))
    with pytest.raises(ValueError, match=r'\(samples, features\)'):
        a.transform(np.ones(16))
    with pytest.raises(RuntimeError, match='not trained'):
        TopoSparseDream(2, 2, excitation_radius=1).transform(X)


def _run(experiment, *params, expect=0):
    r = reprlab('run', experiment, *[x for kv in params for x in ('-p', *kv)], '--json', '--no-progress', timeout=600)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_topo_study_preset_end_to_end(lab):
    "The study preset with tiny sizes: the study's values reach the run, the comparison, figures and dialog come out."
    out = _run('topo_sparse_dream', ('preset', 'study'), ('dataset', 'digits'), ('kx', '5'), ('ky', '5'), ('epochs', '2'),
               ('samples_per_epoch', '300'), ('probe_train', '300'))
    p, m, d = out['params'], out['metrics'], Path(out['run_dir'])
    assert (p['lr'], p['sparsity'], p['homeostasis_rate'], p['excitation_radius'], p['prec']) == (0.1, 0.02, 1.0, 2, 1e-10)
    assert (p['clip_edges'], p['init_low'], p['init_high'], p['prune_schedule'], p['batch_size']) == (True, 0.1, 1.0, 'epoch', 1)
    assert (p['kx'], p['dataset']) == (5, 'digits')                                   # explicit values win over the preset
    for k in ('test_mse', 'mean_activity', 'population_sparseness', 'lifetime_sparseness', 'cofiring', 'topographic_smoothness',
              'probe_acc', 'samples_per_second', 'zero_weights', 'surround_test_mse', 'surround_cofiring', 'edge_change_ratio'):
        assert np.isfinite(m[k]), k
    assert 0 < m['probe_acc'] <= 1 and 0 < m['test_mse'] < 1 and m['hopes_total'] == 4
    figures = {f.stem for f in (d / 'figures').glob('*.png')}
    assert {'features_none', 'features_surround', 'reconstructions_none', 'thresholds_activity_surround', 'training',
            'last_epoch_change', 'activity_stats', 'comparison'} <= figures
    dialog = (d / 'dialog.md').read_text()
    assert f"{m['test_mse']:.4f}" in dialog and f"{m['surround_test_mse']:.4f}" in dialog
    assert "Preset **study**, except" in dialog and "`kx` = 5 (study: 20)" in dialog and 'clipped as in the original' in dialog
    nb = json.loads((d / 'report.ipynb').read_text())           # static figures in the recorded notebook, no widget placeholders
    mimes = {k for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) for k in o.get('data', {})}
    assert 'image/png' in mimes and 'application/vnd.jupyter.widget-view+json' not in mimes


def test_topo_divergence_is_a_failed_run_without_dialog(lab):
    out = _run('topo_sparse_dream', ('lr', '1000'), ('epochs', '2'), ('compare', 'false'), ('kx', '4'), ('ky', '4'), expect=1)
    assert out['status'] == 'failed' and out['error'].startswith('diverged:') and out['error'].endswith('lower lr'), out['error']
    d = Path(out['run_dir'])
    dialog = (d / 'dialog.md').read_text().strip() if (d / 'dialog.md').exists() else ''
    assert Path(out['report']).exists() and (dialog == '' or dialog.startswith('Preset **') and '\n' not in dialog), dialog  # begin's preset sentence, no analysis


def test_topo_parameters_are_checked_before_the_kernel_starts(lab):
    for params, words in ((('kx', 'six'),), ('kx', 'int')), ((('epochs', '0'),), ('epochs', 'min 1')), \
                         ((('inhibition', 'ring'),), ('inhibition', 'surround')), ((('preset', 'paper'),), ('preset', 'study')):
        r = reprlab('run', 'topo_sparse_dream', *[x for kv in params for x in ('-p', *kv)])
        assert r.returncode == 2 and all(w in r.stderr for w in words), r.stderr
    assert not (lab / 'reports').exists() or not any((lab / 'reports').rglob('params.json'))


def test_bench_topo_measures_three_ways(lab):
    out = _run('bench_topo', ('kx', '6'), ('ky', '6'), ('n_sample', '150'), ('n_batch', '600'), ('batch_size', '20'), ('repeats', '1'))
    m = out['metrics']
    assert m['numpy_samples_per_second'] > 0 and m['sample_samples_per_second'] > 0 and m['batch_samples_per_second'] > 0
    assert m['batch_speedup'] == pytest.approx(m['batch_samples_per_second'] / m['numpy_samples_per_second'])
    assert m['hopes_total'] == 2 and out['params']['dataset'] == 'generated'         # offline by default; no timing is asserted
    assert (Path(out['run_dir']) / 'figures' / 'samples_per_second.png').exists()
