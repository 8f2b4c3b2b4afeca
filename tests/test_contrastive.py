"""Sparse contrastive codes: the experiment end to end on the digits and on CIFAR-100 files in the official format,
its parameter checks, and the probe benchmark."""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import reprlab

from reprlab.data import write_fake_cifar

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'


def _run(experiment, *params, expect=0):
    r = reprlab('run', experiment, *[x for kv in params for x in ('-p', *kv)], '--json', timeout=900)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


def test_sparse_contrastive_on_digits(lab):
    out = _run('sparse_contrastive', ('epochs', '4'), ('units', '48'), ('top_k', '5'), ('compare_top_k', '0,5'), ('knn_k', '7'))
    m, d = out['metrics'], Path(out['run_dir'])
    for k in ('knn_acc', 'knn_example_acc', 'knn_example_acc_std', 'svm_train_acc', 'svm_val_acc', 'pixels_knn_acc',
              'pixels_svm_val_acc', 'knn_acc_k0', 'svm_val_acc_k5'):
        assert 0 <= m[k] <= 1, k
    assert m['svm_seconds'] > 0 and m['active_units_per_sample'] <= 5 and 0 <= m['unused_units_01'] <= 48
    assert m['active_units_per_sample_k0'] > m['active_units_per_sample_k5'] and m['hopes_total'] == 3
    assert m['n_val'] == 270 and m['pixels_knn_acc'] > 0.9                      # the digits' validation split
    assert {p.stem for p in (d / 'figures').glob('*.png')} == {'views', 'training', 'activity_stats', 'codes', 'probes'}
    dialog = (d / 'dialog.md').read_text()
    assert f"{m['knn_acc']:.1%}" in dialog and f"{m['pixels_knn_acc']:.1%}" in dialog and 'top-5' in dialog
    nb = json.loads((d / 'report.ipynb').read_text())
    mimes = {k for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) for k in o.get('data', {})}
    assert 'image/png' in mimes and WIDGET_MIME not in mimes


def test_sparse_contrastive_on_cifar100_files_scores_coarse_and_fine(lab, monkeypatch):
    write_fake_cifar(lab / 'data' / 'cifar100' / 'cifar-100-python.tar.gz', 'cifar100', n_per_batch=24)   # 120 train, 24 test
    monkeypatch.setenv('REPRLAB_DATA', str(lab / 'data'))
    out = _run('sparse_contrastive', ('dataset', 'cifar100'), ('verify', 'false'), ('val_size', '40'), ('epochs', '1'),
               ('units', '16'), ('width', '4'), ('batch_size', '40'), ('top_k', '4'), ('compare_top_k', '4'), ('knn_k', '3'))
    m = out['metrics']
    assert m['n_train'] == 80 and m['n_val'] == 40
    for k in ('knn_acc', 'knn_acc_coarse', 'svm_val_acc', 'svm_val_acc_coarse', 'pixels_knn_acc_coarse'):
        assert 0 <= m[k] <= 1, k
    assert m['hopes_total'] == 2                                  # no dense code in this comparison: two hopes checked
    assert 'coarse labels' in (Path(out['run_dir']) / 'dialog.md').read_text()


@pytest.mark.parametrize('params, message', [
    ((('objective', 'nce'),), "objective='nce'"),
    ((('compare_top_k', '0,seven'),), "compare_top_k='0,seven'"),
    ((('top_k', '300'),), 'expected 0 (dense) to units=256'),
])
def test_sparse_contrastive_refuses_bad_settings(lab, params, message):
    out = _run('sparse_contrastive', *params, expect=1)
    assert out['status'] == 'failed' and message in out['error'] and Path(out['report']).exists()


def test_bench_probes_measures_both_and_agrees(lab):
    out = _run('bench_probes', ('dataset', 'digits'), ('n_train', '1000'), ('n_query', '400'), ('svm_compare', '300'))
    m = out['metrics']
    for kind in ('pixels', 'codes', 'sparse_codes'):
        assert m[f'reprlab_s_{kind}'] > 0 and m[f'sklearn_s_{kind}'] > 0, kind
        assert m[f'agreement_{kind}'] >= 0.99, kind                   # the same predictions (float ties aside)
        assert m[f'speedup_{kind}'] == pytest.approx(m[f'sklearn_s_{kind}'] / m[f'reprlab_s_{kind}'])
    assert m['svm_seconds'] > 0 and 0 < m['svm_val_acc'] <= 1 and m['liblinear_seconds'] > 0
    assert (Path(out['run_dir']) / 'figures' / 'seconds.png').exists()
