"""The results store under concurrent writers."""
import multiprocessing as mp

from reprlab.store import Store


def _writer(path, worker, n):
    st = Store(path)
    for i in range(n):
        rid = f'w{worker}-{i}'
        st.add(id=rid, experiment='exp', params={'worker': worker, 'i': i}, status='running', started=f'2026-01-01 00:00:{i:02d}')
        st.update(rid, status='ok', metrics={'value': worker * 1000 + i}, duration=0.1)


def test_concurrent_processes_lose_no_rows(tmp_path):
    path = tmp_path / 'results.sqlite'
    Store(path)
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(6)]
    for p in procs: p.start()
    for p in procs: p.join(120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    df = Store(path).runs('exp')
    assert len(df) == 240 and df.id.is_unique
    assert (df.status == 'ok').all()
    assert sorted(df.value) == sorted(w * 1000 + i for w in range(6) for i in range(40))
    assert (df.value == df.worker * 1000 + df.i).all()             # every row kept its own metrics


def test_store_rejects_unknown_columns_and_statuses(tmp_path):
    st = Store(tmp_path / 'r.sqlite')
    for bad in (dict(colour='red'), dict(status='finished')):
        try:
            st.add(id='x', experiment='e', params={}, started='2026-01-01 00:00:00', **{'status': 'ok', **bad})
            raise AssertionError(bad)
        except ValueError as e:
            assert 'colour' in str(e) or 'finished' in str(e)
    assert len(st.runs()) == 0
