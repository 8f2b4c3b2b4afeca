"""Shared fixtures: every test gets its own reports folder and results store."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def lab(tmp_path, monkeypatch):
    "An isolated lab: reports and store under tmp_path, the project's experiments."
    monkeypatch.setenv('REPRLAB_REPORTS', str(tmp_path / 'reports'))
    monkeypatch.setenv('REPRLAB_STORE', str(tmp_path / 'results.sqlite'))
    monkeypatch.setenv('REPRLAB_DEVICE', 'cpu')
    return tmp_path


@pytest.fixture
def lab_experiments(lab, monkeypatch):
    "A lab whose experiments folder is a temporary copy of the project's (tests add their own notebooks)."
    exp = lab / 'experiments'
    shutil.copytree(ROOT / 'nbs' / 'experiments', exp)
    monkeypatch.setenv('REPRLAB_EXPERIMENTS', str(exp))
    return exp


def reprlab(*args, timeout=300, **kw):
    "Run the reprlab command; returns the CompletedProcess."
    return subprocess.run([str(BIN / 'reprlab'), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, **kw)


def mnist_dir():
    "The folder holding real MNIST (REPRLAB_DATA/mnist), or None."
    d = os.environ.get('REPRLAB_DATA')
    return Path(d) / 'mnist' if d and (Path(d) / 'mnist' / 'train-images-idx3-ubyte.gz').exists() else None


@pytest.fixture
def tmpfs(tmp_path):
    "A mount point holding a small tmpfs (1 MiB), remountable read-only; skips where mounting is not allowed."
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mnt)], capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f'cannot mount a tmpfs here: {r.stderr.strip()}')

    def remount(opts):
        subprocess.run(['mount', '-o', f'remount,{opts}', str(mnt)], check=True)
    yield SimpleNamespace(path=mnt, remount=remount)
    subprocess.run(['umount', '-l', str(mnt)], capture_output=True)


def files_under(path):
    "Every file below `path`, as paths relative to it (sorted)."
    path = Path(path)
    return sorted(str(p.relative_to(path)) for p in path.rglob('*') if p.is_file()) if path.exists() else []


@pytest.fixture
def busy_machine():
    "Two CPU-bound processes running beside the test (a machine busy with other work); stopped afterwards."
    burners = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(2)]
    try: yield burners
    finally:
        for b in burners: b.kill(); b.wait()

