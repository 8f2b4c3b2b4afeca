"""The centroid net: its loss gradient against finite differences of the NumPy formulas, divergence and the
best-validation epoch, and the centroid_clustering experiment by papermill: the study preset with tiny sizes, an
unknown preset refused before any kernel starts, and a diverging run that fails with its tracking tables kept."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import reprlab
from sklearn.base import clone

from reprlab.centroid import CCENet, CentroidNet, centroid_loss
from reprlab.report import DivergedError
from reprlab.experiment import notebook_params, notebook_presets

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / 'nbs' / 'experiments' / 'centroid_clustering.ipynb'


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
    net = CentroidNet(layers='8,4', epochs=2, device='cpu', progress=False)
    with pytest.raises(RuntimeError, match='fit'): net.predict(X)
    net.fit(X, y)
    with pytest.raises(ValueError, match='features'): net.predict(X[:, :5])
    with pytest.raises(ValueError, match='do not occur in the training labels'): clone(net).fit(X, y, {'val': (X, y + 1)})
    assert net.predict(X).shape == (60,) and net.centroids_.shape == (3, 4) and len(net.history_) == 2 == net.n_iter_
    assert net.transform(X).shape == (60, 4) and net.n_features_in_ == 6
    cce = CCENet(layers='8,4', epochs=2, device='cpu', progress=False).fit(X, y)
    assert set(cce.predict(X)) <= {0, 1, 2} and 'cce' in cce.history_


def test_a_growing_representation_is_divergence_even_with_a_finite_loss():
    "The centroid loss sees only directions: h can blow up while the loss stays in [-1, 1]; the epoch check catches h."
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 40)), np.arange(300) % 4
    net = CentroidNet(layers='64,16,64', lr=1e3, batch_size=100, epochs=2, device='cpu', progress=False)
    with pytest.raises(DivergedError, match=r'^diverged: .* at epoch \d+; lower lr$') as e: net.fit(X, y)
    assert len(net.history_) == 0 and ('h is' in str(e.value) or 'weights is' in str(e.value))


def test_keep_best_ends_with_the_best_validation_epoch():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1.2, (3, 10))
    y = np.arange(360) % 3
    X = centres[y] + rng.normal(0, 1, (360, 10))
    kept = CentroidNet(layers='32,8', lr=1e-2, batch_size=40, epochs=15, keep_best=True, device='cpu', seed=2, progress=False)
    kept.fit(X[:120], y[:120], {'val': (X[120:240], y[120:240]), 'test': (X[240:], y[240:])})
    h = kept.history_
    assert kept.best_epoch_ == h.val_f1.idxmax() and {'train_f1', 'val_f1', 'test_f1'} <= set(h.columns)
    assert kept.score(X[120:240], y[120:240]) == h.val_acc[kept.best_epoch_]
    with pytest.raises(ValueError, match="needs eval_sets with a non-empty 'val'"): kept.fit(X, y)


def _run(*params, expect=0):
    r = reprlab('run', 'centroid_clustering', *[x for kv in params for x in ('-p', *kv)], '--json', timeout=600)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_presets_hold_every_study_value_and_the_lab_defaults_differ():
    params, presets = notebook_params(NB), notebook_presets(NB)
    study = presets['study']
    assert params['preset'].constraint == '{lab, study}' and set(presets) == {'study'}
    assert study['dataset'] == 'corel_hard' and study['scale'] == 'none' and study['layers'] == '2048,256,4096'
    assert (study['slope'], study['lr'], study['batch_size'], study['epochs']) == (0.1, 0.00065, 3400, 100)
    assert study['study_cce'] is True and study['baselines'] is True
    for p in params.values():                                            # every number has a constraint
        assert p.type not in ('int', 'float') or p.constraint, p.name
    assert params['dataset'].default == 'corel_hard' and params['scale'].default == 'none'
    assert [k for k, v in study.items() if params[k].default != v] == ['layers', 'lr', 'batch_size', 'epochs', 'baselines']
    assert 'seeds' not in params and params['seed'].type == 'int'     # a run trains on one seed; replicates are `reprlab sweep --seeds`
    r = reprlab('run', 'centroid_clustering', '-p', 'seeds', '3', '--dry-run')
    assert r.returncode == 2 and 'seeds' in r.stderr


def test_study_preset_runs_with_tiny_sizes_and_says_how_it_differs(lab):
    out = _run(('preset', 'study'), ('layers', '32,16'), ('epochs', '3'), ('batch_size', '100'), ('n_train', '300'), ('seed', '1'))
    m, d, p = out['metrics'], Path(out['run_dir']), out['params']
    assert out['status'] == 'ok' and p['preset'] == 'study'
    assert (p['dataset'], p['lr'], p['scale'], p['baselines'], p['study_cce']) == ('corel_hard', 0.00065, 'none', True, True)   # from the preset
    assert (p['layers'], p['epochs'], p['batch_size']) == ('32,16', 3, 100)                                          # explicit values win
    for k in ('test_acc', 'val_acc', 'test_f1', 'cce_test_acc', 'cce_study_test_acc', 'logreg_test_acc', 'svm_test_acc'):
        assert 0.1 <= m[k] <= 1, (k, m[k])
    assert m['n_train'] == 300 and m['n_test'] == 1000 and m['hopes_total'] == 4 and not any(k.endswith('_std') for k in m)   # one seed per run
    assert 1 <= m['best_epoch'] <= 3 and abs(m['gap_cce'] - (m['test_acc'] - m['cce_test_acc']) * 100) < 1e-9
    assert {p.stem for p in (d / 'figures').glob('*.png')} == {'comparison', 'accuracy', 'norms', 'centroid_movement', 'latent'}
    assert {p.name for p in (d / 'tracking').iterdir()} == {'centroid.csv', 'cce.csv', 'cce_study.csv'}
    for kind in ('centroid', 'cce', 'cce_study'):
        t = pd.read_csv(d / 'tracking' / f'{kind}.csv', index_col='epoch')
        assert list(t.index) == [1, 2, 3] and {'grad_norm', 'weight_norm', 'act_norm_val', 'test_acc', 'val_f1'} <= set(t.columns)
        prefix = {'centroid': '', 'cce': 'cce_', 'cce_study': 'cce_study_'}[kind]
        assert t.test_acc[t.val_f1.idxmax()] == m[f'{prefix}test_acc'] and t.val_f1.idxmax() == m[f'{prefix}best_epoch']   # the best-validation epoch's numbers
    dialog = (d / 'dialog.md').read_text()
    assert f"{m['test_acc']:.1%}" in dialog and f"{m['cce_study_test_acc']:.1%}" in dialog
    assert "`layers` = '32,16' (study: '2048,256,4096')" in dialog and '`lr`' not in dialog and 'trains on 300' in dialog
    assert 'Differs from the study' in (d / 'report.html').read_text()


def test_an_unknown_preset_is_refused_before_any_kernel_starts(lab):
    r = reprlab('run', 'centroid_clustering', '-p', 'preset', 'paper', '--json')
    assert r.returncode == 2 and 'preset' in r.stderr and 'paper' in r.stderr
    assert not (lab / 'reports' / 'centroid_clustering').exists()


def test_a_diverging_run_fails_clearly_and_keeps_its_tracking(lab):
    "The probe of issue 20: this run used to end ok with mean |h| near 9e14 and a dialog declaring a winner."
    out = _run(('lr', '1e3'), ('epochs', '2'), ('n_train', '300'), ('layers', '64,16,64'), ('baselines', 'false'), expect=1)
    assert out['status'] == 'failed' and out['error'].startswith('diverged:') and 'lower lr' in out['error'], out['error']
    d = Path(out['run_dir'])
    assert (d / 'tracking' / 'centroid.csv').exists() and Path(out['report']).exists()
    said = [s for s in (d / 'dialog.md').read_text().split('\n\n') if s.strip()] if (d / 'dialog.md').exists() else []
    assert all(s.startswith('Preset **lab**') for s in said), said       # begin's preset sentence only: no verdict on the bad numbers
    assert 'hopes_total' not in out['metrics']


def test_one_epoch_runs_and_says_there_is_no_centroid_movement(lab):
    "epochs = 1 is allowed by its constraint: the movement figure and the dialog say there is nothing to compare with."
    out = _run(('epochs', '1'), ('n_train', '300'), ('layers', '32,16'), ('study_cce', 'false'))
    d = Path(out['run_dir'])
    assert out['status'] == 'ok' and out['metrics']['best_epoch'] == 1, out.get('error')
    assert (d / 'figures' / 'centroid_movement.png').exists()
    assert 'a single epoch: no centroid movement to report' in (d / 'dialog.md').read_text()
    t = pd.read_csv(d / 'tracking' / 'centroid.csv', index_col='epoch')
    assert list(t.index) == [1] and t.centroid_moved_mean.isna().all()


def test_a_last_layer_narrower_than_the_classes_fails_before_any_training(lab):
    "The study's CCE net classifies with its last layer: fewer units than classes is refused right after the data load."
    out = _run(('layers', '16,8'), ('epochs', '1'), ('n_train', '300'), expect=1)
    assert out['error'].startswith("ValueError: layers = '16,8': the last layer has 8 units, fewer than the 10 classes of corel_hard"), out['error']
    assert 'study_cce false' in out['error'] and not (Path(out['run_dir']) / 'tracking').exists()
