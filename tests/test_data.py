"""Dataset loaders on real MNIST (when present) and on generated files in the exact formats."""
import gzip
import hashlib
import http.server
import shutil
import threading
from functools import partial

import numpy as np
import pytest
from conftest import mnist_dir

from reprlab.data import (DataError, RemoteFile, download, load_dataset, locate, write_fake_cifar, write_idx)

MNIST_NAMES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
needs_mnist = pytest.mark.skipif(mnist_dir() is None, reason='real MNIST not found: set REPRLAB_DATA to a folder holding mnist/')


@needs_mnist
def test_real_mnist_loads_and_verifies():
    ds = load_dataset('mnist', download=False)
    assert ds.X_train.shape == (50000, 784) and ds.X_val.shape == (10000, 784) and ds.X_test.shape == (10000, 784)
    assert ds.X_train.dtype == np.float32 and ds.X_train.min() == 0 and ds.X_train.max() == 1
    assert np.bincount(ds.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert load_dataset('mnist', flat=False, download=False).X_test.shape == (10000, 28, 28)


def _copy_mnist(tmp_path):
    d = tmp_path / 'data' / 'mnist'
    d.mkdir(parents=True)
    for n in MNIST_NAMES: shutil.copy(mnist_dir() / n, d / n)
    return d


@needs_mnist
@pytest.mark.parametrize('corruption, message', [
    ('truncate', 'cannot be read as gzip'),
    ('magic', 'expected magic 2051, found 2049'),
    ('pixel', 'sha256 of the content is'),
])
def test_corrupt_mnist_file_is_named(tmp_path, corruption, message):
    d = _copy_mnist(tmp_path)
    f = d / 'train-images-idx3-ubyte.gz'
    if corruption == 'truncate': f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    else:
        raw = bytearray(gzip.decompress(f.read_bytes()))
        if corruption == 'magic': raw[3] = 1                      # 2051 -> 2049
        else: raw[5000] ^= 0xFF                                   # one pixel: only the checksum can tell
        f.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError) as e:
        load_dataset('mnist', data_dir=tmp_path / 'data', cache_dir=tmp_path / 'cache', download=False)
    assert 'train-images-idx3-ubyte' in str(e.value) and message in str(e.value)


def test_offline_without_files_names_files_folders_and_urls(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset('mnist', data_dir=tmp_path / 'data', cache_dir=tmp_path / 'cache', progress=False)
    msg = str(e.value)
    assert msg.startswith('mnist: 4 file(s) not found')
    for name in MNIST_NAMES: assert f'https://ossci-datasets.s3.amazonaws.com/mnist/{name}' in msg
    assert 'train-images-idx3-ubyte.gz' in msg and str(tmp_path / 'data' / 'mnist') in msg and str(tmp_path / 'cache' / 'mnist') in msg
    assert 'https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz' in msg


def _write_fashion(d, n_train=60000, n_test=10000):
    "Fashion-MNIST files in the exact IDX layout (mostly blank images: quick to write and compress)."
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        imgs = np.zeros((n, 28, 28), np.uint8); imgs[:, 14, :] = rng.integers(0, 256, (n, 28), dtype=np.uint8)
        write_idx(d / f'{prefix}-images-idx3-ubyte.gz', imgs)
        write_idx(d / f'{prefix}-labels-idx1-ubyte.gz', rng.integers(0, 10, n).astype(np.uint8))


def test_fashion_mnist_from_generated_files(tmp_path):
    _write_fashion(tmp_path / 'fashion_mnist')
    ds = load_dataset('fashion_mnist', data_dir=tmp_path, cache_dir=tmp_path / 'cache', download=False, verify=False, flat=False)
    assert ds.X_train.shape == (50000, 28, 28) and ds.classes[9] == 'Ankle boot'
    raw = gzip.decompress((tmp_path / 'fashion_mnist' / 't10k-images-idx3-ubyte.gz').read_bytes())
    assert (ds.X_test[:, 14] * 255).round().astype(np.uint8).tobytes() == \
           np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:, 14].tobytes()
    # the published checksums are enforced by default: generated files do not match them
    with pytest.raises(DataError, match=r'train-images-idx3-ubyte.gz: md5 [0-9a-f]+, expected 8d4fb7e6'):
        load_dataset('fashion_mnist', data_dir=tmp_path, cache_dir=tmp_path / 'cache', download=False)


def test_idx_with_wrong_count_is_rejected(tmp_path):
    _write_fashion(tmp_path / 'fashion_mnist', n_test=9999)
    with pytest.raises(DataError, match=r't10k-images-idx3-ubyte.gz: expected shape \(10000, 28, 28\), found \(9999, 28, 28\)'):
        load_dataset('fashion_mnist', data_dir=tmp_path, download=False, verify=False)


def test_cifar_archive_and_extracted_folder(tmp_path):
    arch = write_fake_cifar(tmp_path / 'a' / 'cifar10' / 'cifar-10-python.tar.gz', n_per_batch=10)
    ds = load_dataset('cifar10', data_dir=tmp_path / 'a', download=False, verify=False, val_size=5, flat=False)
    assert ds.X_train.shape == (45, 3, 32, 32) and ds.X_test.shape == (10, 3, 32, 32) and ds.n_classes == 10
    import tarfile
    with tarfile.open(arch) as t: t.extractall(tmp_path / 'b' / 'cifar10', filter='data')
    ds2 = load_dataset('cifar10', data_dir=tmp_path / 'b', download=False, val_size=5, flat=False)
    assert (ds2.X_test == ds.X_test).all() and (ds2.y_train == ds.y_train).all()
    write_fake_cifar(tmp_path / 'c' / 'cifar100' / 'cifar-100-python.tar.gz', 'cifar100', n_per_batch=10)
    fine = load_dataset('cifar100', data_dir=tmp_path / 'c', download=False, verify=False, val_size=5)
    assert fine.n_classes == 100 and fine.X_train.shape == (45, 3072)


def test_corrupt_cifar_archive_is_named(tmp_path):
    arch = write_fake_cifar(tmp_path / 'cifar10' / 'cifar-10-python.tar.gz', n_per_batch=10)
    arch.write_bytes(arch.read_bytes()[:300])
    with pytest.raises(DataError, match='cifar-10-python.tar.gz'):
        load_dataset('cifar10', data_dir=tmp_path, download=False, verify=False)
    write_fake_cifar(arch, n_per_batch=10)
    with pytest.raises(DataError, match=r'cifar-10-python.tar.gz: md5 [0-9a-f]+, expected c58f3010'):
        load_dataset('cifar10', data_dir=tmp_path, download=False)


@pytest.fixture
def http_root(tmp_path):
    "A local HTTP server on 127.0.0.1 serving tmp_path/www; stopped at the end."
    root = tmp_path / 'www'
    root.mkdir()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(root)))
    server.timeout = 5
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown(); server.server_close()


def test_download_from_mirror_verifies_checksum(tmp_path, http_root):
    root, url = http_root
    (root / 'good').mkdir()
    write_idx(root / 'good' / 'train-labels-idx1-ubyte.gz', np.arange(10, dtype=np.uint8))
    content = gzip.decompress((root / 'good' / 'train-labels-idx1-ubyte.gz').read_bytes())
    sha = hashlib.sha256(content).hexdigest()
    # the first mirror is down, the second serves a corrupt copy, the third a good one
    (root / 'bad').mkdir()
    write_idx(root / 'bad' / 'train-labels-idx1-ubyte.gz', np.arange(1, 11, dtype=np.uint8))
    rf = RemoteFile('train-labels-idx1-ubyte.gz', ('http://127.0.0.1:9/down', f'{url}/bad', f'{url}/good'), sha256=sha)
    p = locate('mnist', rf, tmp_path / 'data', tmp_path / 'cache', progress=False)
    assert p == tmp_path / 'cache' / 'mnist' / 'train-labels-idx1-ubyte.gz'
    assert gzip.decompress(p.read_bytes()) == content and not list(p.parent.glob('*.part'))
    assert locate('mnist', rf, tmp_path / 'data', tmp_path / 'cache', download_ok=False) == p   # now served from the cache
    with pytest.raises(DataError) as e:
        download(RemoteFile(rf.name, (f'{url}/bad',), sha256=sha), tmp_path / 'other', progress=False)
    assert f'{url}/bad/train-labels-idx1-ubyte.gz' in str(e.value) and 'sha256' in str(e.value)
    assert not (tmp_path / 'other' / 'train-labels-idx1-ubyte.gz').exists()   # a bad download is not kept


def test_synthetic_hard_is_deterministic_and_adjustable():
    a, b = load_dataset('synthetic_hard'), load_dataset('synthetic_hard')
    assert a.X_train.shape == (3400, 1000) and a.X_val.shape == (600, 1000) and a.X_test.shape == (1000, 1000)
    assert (a.X_train == b.X_train).all() and (a.y_test == b.y_test).all()
    assert np.bincount(a.y_train, minlength=10).min() > 300
    small = load_dataset('synthetic_hard', n_features=50, n_train=100, n_val=20, n_test=30, class_sep=3.0)
    assert small.X_train.shape == (100, 50) and small.info['class_sep'] == 3.0
    with pytest.raises(TypeError, match='unexpected arguments'):
        load_dataset('digits', class_sep=2.0)
    with pytest.raises(ValueError, match="unknown dataset 'mnits'"):
        load_dataset('mnits')


def test_corel_hard_is_the_study_recipe_with_raw_features():
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    X, y = make_classification(n_samples=5000, n_features=1000, n_informative=50, n_redundant=500, n_classes=10,
                               n_clusters_per_class=2, class_sep=1, random_state=1848)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    Xtr, Xva, ytr, yva = train_test_split(Xtr, ytr, test_size=0.15, random_state=10)
    ds = load_dataset('corel_hard')
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test)) == (3400, 600, 1000) and ds.n_classes == 10 and ds.n_features == 1000
    for got, want in ((ds.X_train, Xtr), (ds.X_val, Xva), (ds.X_test, Xte)):   # no scaling unless asked
        assert got.dtype == np.float32 and np.array_equal(got, want.astype(np.float32))
    assert all(np.array_equal(a, b) for a, b in ((ds.y_train, ytr), (ds.y_val, yva), (ds.y_test, yte)))
    assert ds.info['scale'] == 'none' and ds.X_train.std() > 10            # raw: far from [0, 1]
    with pytest.raises(ValueError, match='val_size=100 does not apply'):
        load_dataset('corel_hard', val_size=100)


def test_no_dataset_is_scaled_unless_asked():
    sh = load_dataset('synthetic_hard', n_features=30, n_train=80, n_val=20, n_test=20)
    from reprlab.data import make_synthetic_hard
    raw = make_synthetic_hard(n_features=30, n_train=80, n_val=20, n_test=20)
    assert np.array_equal(sh.X_train, raw[0].astype(np.float32)) and sh.X_train.min() < 0 and sh.info['scale'] == 'none'
    d = load_dataset('digits', val_size=0)                                 # pixels / 16, nothing per feature
    assert d.info['scale'] == 'none' and set(np.unique(d.X_test * 16).round(4)) == set(range(17))


@pytest.mark.parametrize('scale', ['minmax', 'standard'])
def test_scale_options_equal_numpy_fitted_on_train(scale):
    kw = dict(n_features=40, n_train=120, n_val=30, n_test=50, seed=3)
    raw, ds = load_dataset('synthetic_hard', **kw), load_dataset('synthetic_hard', scale=scale, **kw)
    Xtr = raw.X_train.astype(np.float64)
    shift, div = (Xtr.min(0), Xtr.max(0) - Xtr.min(0)) if scale == 'minmax' else (Xtr.mean(0), Xtr.std(0))
    for split in ('train', 'val', 'test'):
        want = (getattr(raw, f'X_{split}').astype(np.float64) - shift) / div
        assert np.allclose(getattr(ds, f'X_{split}'), want, atol=1e-5), split
    assert ds.info['scale'] == scale
    if scale == 'minmax': assert ds.X_train.min() == 0 and ds.X_train.max() == 1 and (ds.X_test.min() < 0 or ds.X_test.max() > 1)
    else: assert np.allclose(ds.X_train.mean(0), 0, atol=1e-5) and not np.allclose(ds.X_test.mean(0), 0, atol=1e-3)
    img = load_dataset('digits', scale=scale, flat=False)                 # images: per pixel, then reshaped
    plain = load_dataset('digits')
    P = plain.X_train.astype(np.float64)
    shift, div = (P.min(0), P.max(0) - P.min(0)) if scale == 'minmax' else (P.mean(0), P.std(0))
    assert img.X_val.shape == (270, 8, 8)
    assert np.allclose(img.X_val.reshape(270, 64), (plain.X_val - shift) / np.where(div > 0, div, 1), atol=1e-5)


def test_unknown_scale_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match=r"scale='unit': expected one of 'none', 'minmax', 'standard'"):
        load_dataset('digits', scale='unit')
