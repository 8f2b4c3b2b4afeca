"""The centroid net: its loss gradient against finite differences of the NumPy formulas, tracking, and the
centroid_clustering experiment by papermill (including a diverging run that keeps its tracking tables)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import reprlab

from reprlab.centroid import CCENet, CentroidNet, centroid_loss


def _np_total(H, y, lam1, lam2, lam3):
    "The loss written directly from the formulas, in float64."
    d = lambda u, v: (1 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))) / 2
    classes = sorted(set(y.tolist())); K, n = len(classes), len(H)
    mu = {k: H[y == k].mean(0) for k in classes}
    att = lam1 / n * sum(d(mu[k], H[i]) for k in classes for i in range(n) if y[i] == k)
    rep = -lam2 / (n * (K - 1)) * sum(d(mu[k], H[j]) for k in classes for j in range(n) if y[j] != k)
    cc = -lam3 * np.mean([d(mu[k], mu[l]) for k in classes for l in classes if k != l])
    return att + rep + cc


def test_loss_gradient_matches_finite_differences_of_the_formulas():
    rng = np.random.default_rng(3)
    H, y = rng.normal(size=(12, 5)), rng.integers(0, 3, 12)
    Ht = torch.tensor(H, requires_grad=True)
    centroid_loss(Ht, torch.tensor(y), 3, 0.7, 1.3, 0.5)['loss'].backward()
    num = np.zeros_like(H)
    for idx in np.ndindex(*H.shape):
        e = np.zeros_like(H); e[idx] = 1e-6
        num[idx] = (_np_total(H + e, y, 0.7, 1.3, 0.5) - _np_total(H - e, y, 0.7, 1.3, 0.5)) / 2e-6
    assert np.allclose(Ht.grad.numpy(), num, atol=1e-7)


def test_nets_check_their_input_and_predict_shapes():
    X, y = np.random.default_rng(0).random((60, 6)), np.arange(60) % 3
    net = CentroidNet(6, 3, layers='8,4', device='cpu')
    with pytest.raises(RuntimeError, match='fit'): net.predict(X)
    with pytest.raises(ValueError, match='features'): net.fit(X[:, :5], y, 1, progress=False)
    with pytest.raises(ValueError, match='labels'): net.fit(X, y + 1, 1, progress=False)
    with pytest.raises(ValueError, match='lacks classes'): CentroidNet(6, 4, layers='8,4', device='cpu').fit(X, y, 1, progress=False)
    net.fit(X, y, 2, progress=False)
    assert net.predict(X).shape == (60,) and net.centroids_.shape == (3, 4) and len(net.history) == 2
    cce = CCENet(6, 3, layers='8,4', device='cpu').fit(X, y, 2, progress=False)
    assert set(cce.predict(X)) <= {0, 1, 2} and 'cce' in cce.history


def _run(*params, expect=0):
    r = reprlab('run', 'centroid_clustering', *[x for kv in params for x in ('-p', *kv)], '--json', timeout=600)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_centroid_clustering_experiment_runs(lab):
    out = _run(('dataset', 'digits'), ('layers', '64,32'), ('epochs', '3'), ('seeds', '2'), ('lr', '0.003'))
    m, d = out['metrics'], Path(out['run_dir'])
    for k in ('test_acc', 'val_acc', 'train_acc', 'cce_test_acc', 'cce_val_acc', 'logreg_test_acc', 'svm_test_acc'):
        assert 0.3 < m[k] <= 1, (k, m[k])
    assert m['test_acc_std'] > 0 and m['hopes_total'] == 3
    figures = {p.stem for p in (d / 'figures').glob('*.png')}
    assert figures == {'comparison', 'accuracy', 'norms', 'centroid_movement', 'latent'}
    for kind in ('centroid', 'cce'):
        for s in (0, 1):
            t = pd.read_csv(d / 'tracking' / f'{kind}_seed{s}.csv', index_col='epoch')
            assert list(t.index) == [1, 2, 3] and {'grad_norm', 'weight_norm', 'act_norm_val', 'test_acc'} <= set(t.columns)
    last = pd.read_csv(d / 'tracking' / 'centroid_seed0.csv').iloc[-1]
    assert abs(last.test_acc - m['test_acc']) <= m['test_acc_std'] * 2 + 1e-9          # the metric comes from these tables
    dialog = (d / 'dialog.md').read_text()
    assert f"{m['test_acc']:.1%}" in dialog and f"{m['cce_test_acc']:.1%}" in dialog


def test_a_diverging_run_fails_clearly_and_keeps_its_tracking(lab):
    out = _run(('dataset', 'digits'), ('layers', '16'), ('epochs', '30'), ('lr', '1e30'), ('baselines', 'false'), expect=1)
    assert out['status'] == 'failed' and 'diverged' in out['error'] and 'lower the learning rate' in out['error']
    assert (Path(out['run_dir']) / 'tracking' / 'centroid_seed0.csv').exists()
    assert Path(out['report']).exists()
