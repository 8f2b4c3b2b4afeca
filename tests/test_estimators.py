"""scikit-learn's contract for every estimator of the lab: clone, set_params, Pipeline, cross_val_score,
GridSearchCV(n_jobs=2), pickling, and scikit-learn's own common checks (each expected failure declared with its reason)."""
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from reprlab.centroid import CCENet, CentroidNet
from reprlab.competitive import DreamComp, KrotovHopfield
from reprlab.probes import KNNClassifier, LinearSVM, NearestCentroidClassifier, linear_model
from reprlab.topo import TopoSparseDream


def _estimators():
    "Small instances (fast on two cores), and for each a parameter grid and the accuracy it must beat on digits."
    return {
        'knn': (KNNClassifier(5, device='cpu'), {'k': [1, 5]}, 0.9),
        'centroid': (NearestCentroidClassifier(), {'metric': ['euclidean', 'cosine']}, 0.8),
        'svm': (LinearSVM(device='cpu'), {'C': [0.1, 1.0]}, 0.85),
        'logistic': (linear_model('logistic'), {'logisticregression__C': [0.1, 1.0]}, 0.85),
        'dreamcomp': (DreamComp(49, recon_weight=3.0, lr=0.01, label_lr=0.1, epochs=10, batch_size=10, progress=False, device='cpu'),
                      {'label_lr': [0.05, 0.1]}, 0.7),
        'kh': (KrotovHopfield(30, k=3, epochs=3, batch_size=50, readout_epochs=20, readout_lr=0.03, progress=False, device='cpu'),
               {'readout_lr': [0.01, 0.03]}, 0.6),
        'centroid_net': (CentroidNet(layers='64,32', lr=0.01, batch_size=50, epochs=10, progress=False, device='cpu'), {'lr': [0.003, 0.01]}, 0.85),
        'cce_net': (CCENet(layers='64,32', lr=0.01, batch_size=50, epochs=10, progress=False, device='cpu'), {'lr': [0.003, 0.01]}, 0.85),
    }

NAMES = list(_estimators())


@pytest.fixture(autouse=True)
def one_thread():
    "Tiny torch problems on a shared two-core machine: one thread avoids contention between the threads of one product."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def digits():
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(X))[:600]
    return (X[idx] / 16).astype(np.float32), y[idx]


@pytest.mark.parametrize('name', NAMES)
def test_clone_and_params(name):
    est, grid, _ = _estimators()[name]
    params = est.get_params()
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est and repr(twin.get_params()) == repr(params)
    key, values = next(iter(grid.items()))
    assert twin.set_params(**{key: values[0]}) is twin and twin.get_params()[key] == values[0]
    assert repr(est.get_params()) == repr(params)                      # the original is untouched
    assert is_classifier(est)
    with pytest.raises(NotFittedError):
        twin.predict(np.zeros((2, 64), dtype=np.float32))


@pytest.mark.parametrize('name', NAMES)
def test_cross_val_score_and_pipeline(name, digits):
    X, y = digits
    est, _, floor = _estimators()[name]
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and (scores > floor).all(), scores
    pipe = make_pipeline(MinMaxScaler(), clone(est)).fit(X[:400], y[:400])
    assert pipe.score(X[400:], y[400:]) > floor


@pytest.mark.parametrize('name', NAMES)
def test_grid_search_in_two_processes(name, digits):
    X, y = digits
    est, grid, floor = _estimators()[name]
    search = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X[:400], y[:400])
    key = next(iter(grid))
    assert search.best_params_[key] in grid[key] and search.cv_results_['mean_test_score'].shape == (2,)
    assert search.score(X[400:], y[400:]) > floor


@pytest.mark.parametrize('name', NAMES)
def test_pickle_keeps_predictions_and_seeds_fix_them(name, digits):
    X, y = digits
    est, _, _ = _estimators()[name]
    a = clone(est).fit(X[:400], y[:400])
    b = pickle.loads(pickle.dumps(a))
    assert (a.predict(X[400:]) == b.predict(X[400:])).all()
    assert (clone(est).fit(X[:400], y[:400]).predict(X[400:]) == a.predict(X[400:])).all()   # a refit gives the same model


@parametrize_with_checks([e for name, (e, _, _) in _estimators().items() if name != 'logistic'],   # a scikit-learn pipeline
                         expected_failed_checks=lambda est: getattr(est, 'expected_failed_checks', {}))
def test_sklearn_common_checks(estimator, check):
    check(estimator)


def test_kh_defaults_pass_check_classifiers_train():
    "KrotovHopfield() as constructed, with no argument, reaches the accuracy scikit-learn's classifier check asks on its blobs."
    from sklearn.utils.estimator_checks import check_classifiers_train
    check_classifiers_train('KrotovHopfield', KrotovHopfield())
    check_classifiers_train('KrotovHopfield', KrotovHopfield(), readonly_memmap=True, X_dtype='float32')


def _topo():
    "A tiny TopoSparseDream (3 x 3 grid, two epochs): the transformer case."
    return TopoSparseDream(3, 3, excitation_radius=1, lr=0.05, sparsity=0.1, epochs=2, device='cpu', progress=False)


def test_topo_clone_params_and_pickle(digits):
    X, y = digits
    est = _topo()
    params = est.get_params()
    twin = clone(est)
    assert type(twin) is TopoSparseDream and twin is not est and repr(twin.get_params()) == repr(params)
    assert twin.set_params(inhibition='surround', lr=0.02) is twin and (twin.inhibition, twin.lr) == ('surround', 0.02)
    assert repr(est.get_params()) == repr(params) and not hasattr(est, 'W_')        # the original is untouched, unfitted
    with pytest.raises(NotFittedError):
        twin.transform(X[:2])
    a = clone(est).fit(X[:400])
    assert {'W_', 't_', 'E_', 'I_', 'K_', 'history_', 'last_change_', 'samples_seen_', 'n_features_in_'} <= set(vars(a))
    b = pickle.loads(pickle.dumps(a))
    assert np.array_equal(a.transform(X[400:]), b.transform(X[400:]))
    assert np.array_equal(clone(est).fit(X[:400]).transform(X[400:]), a.transform(X[400:]))   # a refit gives the same model
    pipe = make_pipeline(MinMaxScaler(), clone(est), linear_model('logistic')).fit(X[:400], y[:400])
    assert pipe.score(X[400:], y[400:]) > 0.3                                   # 9 units read out linearly, well above chance


@parametrize_with_checks([_topo()], expected_failed_checks=lambda est: getattr(est, 'expected_failed_checks', {}))
def test_topo_sklearn_common_checks(estimator, check):
    check(estimator)
