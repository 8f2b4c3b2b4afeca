"""Sparse contrastive codes: the experiment end to end on the digits, the study preset on CIFAR-100 files in the official
format, divergence and parameter checks by `reprlab run`, and the probe benchmark."""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import reprlab

from reprlab.contrastive import ContrastiveLearner
from reprlab.data import load_dataset, write_fake_cifar

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'


def _run(experiment, *params, expect=0):
    r = reprlab('run', experiment, *[x for kv in params for x in ('-p', *kv)], '--json', '--no-progress', timeout=900)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_contrastive_learner_follows_scikit_learn_conventions():
    "Settings stored untouched (clone, get_params, set_params), checked by fit; not-fitted error; pickling and refits keep the codes."
    import pickle
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    ds = load_dataset('digits', seed=0)
    est = ContrastiveLearner([8, 8], units=8, hidden=[16], epochs=1, batch_size=64, critic='cosine', device='cpu', progress=False)
    assert est.get_params()['image_shape'] == [8, 8] and est.get_params()['critic'] == 'cosine'     # stored as given, not checked yet
    with pytest.raises(ValueError, match="critic='cosine'"):
        clone(est).fit(ds.X_train[:200])
    twin = clone(est).set_params(critic='logcos')
    assert twin.critic == 'logcos' and est.critic == 'cosine' and not hasattr(twin, 'encoder_')
    with pytest.raises(NotFittedError, match='not fitted'):
        twin.transform(ds.X_val)
    a = twin.fit(ds.X_train[:200])
    b = pickle.loads(pickle.dumps(a))
    assert np.array_equal(a.transform(ds.X_val), b.transform(ds.X_val)) and a.fit_seconds_ > 0
    assert np.array_equal(clone(a).fit(ds.X_train[:200]).transform(ds.X_val), a.transform(ds.X_val))   # a refit gives the same code


def test_sparse_contrastive_on_digits(lab):
    out = _run('sparse_contrastive', ('epochs', '2'), ('units', '32'), ('top_k', '5'), ('compare_top_k', '0,5'), ('knn_k', '7'),
               ('n_train', '500'), ('svm_max_iter', '100'))
    m, d = out['metrics'], Path(out['run_dir'])
    for k in ('knn_acc', 'knn_example_acc', 'knn_example_acc_std', 'svm_train_acc', 'svm_val_acc', 'pixels_knn_acc',
              'pixels_svm_val_acc', 'knn_acc_k0', 'svm_val_acc_k5', 'knn_acc_k5_after', 'svm_val_acc_k5_after'):
        assert 0 <= m[k] <= 1, k
    assert m['svm_seconds'] > 0 and m['active_units_per_sample'] <= 5 and m['active_units_per_sample_k5_after'] <= 5
    assert m['active_units_per_sample_k0'] > m['active_units_per_sample_k5'] and m['hopes_total'] == 4
    # the study's unused-unit count (above the threshold on at most one sample) against the quiet count of the lab's first reading
    assert 0 <= m['unused_units_01'] <= m['dead_units'] + 32 and m['unused_units_01'] >= m['dead_units']
    assert m['quiet_units_01'] >= m['unused_units_01'] and m['n_train'] == 500 and m['n_val'] == 270
    assert {p.stem for p in (d / 'figures').glob('*.png')} == {'views', 'training', 'activity_stats', 'codes', 'probes'}
    dialog = (d / 'dialog.md').read_text()
    assert f"{m['knn_acc']:.1%}" in dialog and f"{m['pixels_knn_acc']:.1%}" in dialog and 'top-5' in dialog
    assert 'after training keep' in dialog and "Unused units as the study counted them" in dialog and 'Preset **lab**' in dialog
    nb = json.loads((d / 'report.ipynb').read_text())
    mimes = {k for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) for k in o.get('data', {})}
    assert 'image/png' in mimes and WIDGET_MIME not in mimes


def test_sparse_contrastive_study_preset_on_cifar100_files(lab, monkeypatch):
    "The study's settings (sigmoid code, log-sim critic, linear u, L1 4, AdamW) with tiny sizes; coarse and fine labels scored."
    write_fake_cifar(lab / 'data' / 'cifar100' / 'cifar-100-python.tar.gz', 'cifar100', n_per_batch=24)   # 120 train, 24 test
    monkeypatch.setenv('REPRLAB_DATA', str(lab / 'data'))
    out = _run('sparse_contrastive', ('preset', 'study'), ('dataset', 'cifar100'), ('verify', 'false'), ('val_size', '40'),
               ('epochs', '1'), ('units', '16'), ('width', '4'), ('batch_size', '40'), ('top_k', '0'), ('compare_top_k', '0'),
               ('knn_k', '3'), ('svm_max_iter', '20'))
    p, m = out['params'], out['metrics']
    assert (p['critic'], p['activation'], p['u_head'], p['l1'], p['sim_floor'], p['weight_decay']) == ('logsim', 'sigmoid', 'code', 4.0, 1e-6, 1e-5)
    assert m['n_train'] == 80 and m['n_val'] == 40
    for k in ('knn_acc', 'knn_acc_coarse', 'svm_val_acc', 'svm_val_acc_coarse', 'pixels_knn_acc_coarse', 'svm_val_acc_k0'):
        assert 0 <= m[k] <= 1, k
    assert m['hopes_total'] == 2 and m['active_units_per_sample'] == 16      # a dense sigmoid code: every unit above 0
    dialog = (Path(out['run_dir']) / 'dialog.md').read_text()
    assert 'coarse labels' in dialog and 'Preset **study**, except' in dialog and "`units` = 16 (study: 256)" in dialog


def test_sparse_contrastive_divergence_is_a_failed_run_without_dialog(lab):
    out = _run('sparse_contrastive', ('lr', '1e6'), ('epochs', '2'), ('units', '16'), ('top_k', '0'), ('compare_top_k', '0'),
               ('n_train', '300'), ('svm_max_iter', '20'), expect=1)
    assert out['status'] == 'failed' and out['error'].startswith('diverged:') and out['error'].endswith('lower lr'), out['error']
    d = Path(out['run_dir'])
    dialog = (d / 'dialog.md').read_text().strip() if (d / 'dialog.md').exists() else ''
    assert Path(out['report']).exists() and (dialog == '' or dialog.startswith('Preset **') and '\n' not in dialog), dialog  # begin's preset sentence, no analysis


@pytest.mark.parametrize('params, words', [
    ((('objective', 'nce'),), ("'objective'", 'flo, infonce')),
    ((('compare_top_k', '0,seven'),), ("'compare_top_k'", 'list[int]')),
    ((('critic', 'cosine'),), ("'critic'", 'logsim')),
    ((('l1', '-1'),), ("'l1'", 'min 0')),
])
def test_sparse_contrastive_refuses_bad_settings_before_the_kernel(lab, params, words):
    r = reprlab('run', 'sparse_contrastive', *[x for kv in params for x in ('-p', *kv)])
    assert r.returncode == 2 and all(w in r.stderr for w in words), r.stderr
    assert not any((lab / 'reports').rglob('params.json')) if (lab / 'reports').exists() else True


def test_bench_probes_measures_both_and_agrees(lab):
    out = _run('bench_probes', ('dataset', 'digits'), ('n_train', '600'), ('n_query', '200'), ('svm_compare', '200'),
               ('units', '32'), ('code_epochs', '1'))
    m = out['metrics']
    for kind in ('pixels', 'codes', 'sparse_codes'):
        assert m[f'reprlab_s_{kind}'] > 0 and m[f'sklearn_s_{kind}'] > 0, kind
        assert m[f'agreement_{kind}'] >= 0.99, kind                   # the same predictions (float ties aside)
        assert m[f'speedup_{kind}'] == pytest.approx(m[f'sklearn_s_{kind}'] / m[f'reprlab_s_{kind}'])
    assert m['svm_seconds'] > 0 and 0 < m['svm_val_acc'] <= 1 and m['liblinear_seconds'] > 0
    assert (Path(out['run_dir']) / 'figures' / 'seconds.png').exists()
