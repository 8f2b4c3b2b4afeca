"""The documentation site (`make docs`): built offline from the notebooks, checked in headless Chromium.

Builds the site once per test session (into a temporary folder, with its own intermediate tree), serves it on
127.0.0.1 and looks at the pages after their scripts ran (`chromium --dump-dom`): an API page with its `show_doc`
signatures and a figure, math rendered by the local MathJax, the offline search, a reference report with its
figures. Screenshots of the pages go to test-artifacts/docs/.
"""
import functools, importlib, importlib.util, json, re, shutil, subprocess, sys, threading
from html import unescape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/'docs'
ARTIFACTS = ROOT/'test-artifacts'/'docs'
CHROMIUM = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-quic', '--hide-scrollbars']

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (Debian package `chromium`, '
                                                          'which .ci/run installs)')


def _build_module():
    spec = importlib.util.spec_from_file_location('reprlab_docs_build', DOCS/'build.py')
    sys.path.insert(0, str(DOCS))
    try:
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    finally: sys.path.remove(str(DOCS))
    return mod


@pytest.fixture(scope='session')
def site(tmp_path_factory):
    "The site, built once per session by docs/build.py (as `make docs` does) into a temporary folder."
    if not (DOCS/'node_modules'/'mathjax'/'es5'/'tex-chtml.js').exists():
        npm = shutil.which('npm')
        if npm is None: pytest.fail('no local MathJax (docs/node_modules) and no npm to install it: run `make docs`')
        subprocess.run([npm, 'ci', '--prefix', str(DOCS), '--no-audit', '--no-fund'], check=True, cwd=ROOT)
    tmp = tmp_path_factory.mktemp('docs')
    out = tmp/'site'
    r = subprocess.run([sys.executable, str(DOCS/'build.py'), '--out', str(out), '--proc', str(tmp/'proc')],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-5000:]}\n{r.stderr[-10000:]}'
    assert 'WARNING' not in r.stderr, r.stderr[-10000:]
    return out


@pytest.fixture(scope='session')
def server(site):
    "The site on a free port of 127.0.0.1; yields its base URL."
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown(); httpd.server_close()


def _chromium(tmp_path, *args, timeout=120):
    profile = tmp_path/f'chromium-profile-{len(list(tmp_path.glob("chromium-profile-*")))}'
    r = subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={profile}', *args], capture_output=True, text=True,
                       timeout=timeout)
    return r


def dom(tmp_path, url) -> str:
    "The page's DOM after its scripts ran."
    r = _chromium(tmp_path, '--virtual-time-budget=10000', '--dump-dom', url)
    assert r.returncode == 0 and '<html' in r.stdout, f'chromium --dump-dom {url} failed: {r.stderr[-3000:]}'
    return r.stdout


def screenshot(tmp_path, url, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS/f'{name}.png'
    path.unlink(missing_ok=True)
    r = _chromium(tmp_path, '--virtual-time-budget=10000', f'--screenshot={path}', '--window-size=1280,2000', url)
    assert path.exists() and path.stat().st_size > 30_000, f'no screenshot of {url}: {r.stderr[-3000:]}'


def _images(html, page_url, base, site):
    "(src, file in the site) of every <img> of a page."
    res = []
    for src in re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', html):
        url = urljoin(page_url, unescape(src))
        assert url.startswith(base), f'image from outside the site: {src}'
        res.append((src, site/unquote(urlparse(url).path).lstrip('/')))
    return res


def _text(html): return unescape(re.sub(r'<[^>]+>', '', html))


def test_api_page(site, server, tmp_path):
    "The reprlab.data page: show_doc's signature of load_dataset, with its parameters, and a figure."
    url = server + 'data.html'
    html = dom(tmp_path, url)
    screenshot(tmp_path, url, 'api-data')
    # the show_doc entry: the heading `load_dataset` followed by its api-entry box (the page also has a prose section
    # of that name)
    chunks = [html[m.end():][:re.search(r'<h[1-6][ >]|$', html[m.end():]).start()]
              for m in re.finditer(r'<h[1-6]>load_dataset<', html)]
    entries = [c for c in chunks if 'api-entry' in c]
    assert entries, 'no show_doc entry of load_dataset on data.html'
    entry = _text(entries[0])
    sig = re.search(r'def load_dataset\((.*?)\)\s*->', entry, re.S)
    assert sig, f'no rendered signature of load_dataset: {entry[:500]}'
    for param in ('name:str', 'flat:bool=True', 'seed:int=0'): assert param in sig.group(1)
    assert 'Load a dataset as train / validation / test splits' in entry  # the docstring
    imgs = _images(html, url, server, site)
    assert any(f.suffix == '.png' and f.exists() and f.stat().st_size > 1000 for _, f in imgs), imgs


def test_math(site, server, tmp_path):
    "A page with math shows MathJax's rendering (from the local copy), not the TeX source."
    pages = sorted(p for p in site.rglob('*.html') if 'class="math' in p.read_text(encoding='utf-8'))
    assert pages, 'no page with math in the site'
    # a notebook page when one has math, else the site's own page about writing math
    page = next((p for p in pages if p.name != 'about.html'), pages[0])
    url = server + page.relative_to(site).as_posix()
    html = dom(tmp_path, url)
    screenshot(tmp_path, url, 'math-' + page.stem)
    if page.name != 'about.html': screenshot(tmp_path, server + 'about.html', 'math-about')  # math near the top
    assert re.search(r'<script[^>]*src="(\.\./)*_static/mathjax/tex-chtml\.js', html), 'MathJax is not the local copy'
    n_math = len(re.findall(r'class="math', page.read_text(encoding='utf-8')))
    rendered = len(re.findall(r'<mjx-container\b', html))
    assert rendered >= n_math > 0, f'{rendered} MathJax renderings for {n_math} formulas on {page.name}'
    spans = re.findall(r'<span class="math[^"]*">(.*?)</span>\s*', html, re.S)
    assert not any('\\(' in s and 'mjx-container' not in s for s in spans), 'raw TeX left on the page'


def test_search(site, server, tmp_path):
    "The offline search finds load_dataset, with a result on the data page."
    url = server + 'search.html?q=load_dataset'
    html = dom(tmp_path, url)
    screenshot(tmp_path, url, 'search-load_dataset')
    results = re.search(r'<ul\b[^>]*class="search"[^>]*>(.*?)</ul>', html, re.S)
    assert results, 'no search results list'
    links = re.findall(r'<a\b[^>]*href="([^"]+)"', results.group(1))
    assert any(re.match(r'(\./)?data\.html', unescape(h)) for h in links), links[:20]


def test_report_page(site, server, tmp_path):
    "A reference report shows its figures (every figure of the run is an image of the page, files present)."
    reports = sorted((ROOT/'reports'/'reference').glob('*/*/report.ipynb'))
    reports = [r for r in reports if r.parent.parent.name != 'sweeps' and (r.parent/'figures').is_dir()]
    assert reports, 'no committed reference report with figures'
    ref = reports[0].parent
    rel = f'reports/{ref.parent.name}/{ref.name}/report.html'
    assert (site/rel).exists(), f'{rel} missing from the site'
    url = server + rel
    html = dom(tmp_path, url)
    screenshot(tmp_path, url, f'report-{ref.parent.name}')
    imgs = [(s, f) for s, f in _images(html, url, server, site) if f.suffix == '.png']
    n_figs = len(list((ref/'figures').glob('*.png')))
    assert len(imgs) >= n_figs, f'{len(imgs)} images on {rel} for {n_figs} figures'
    missing = [s for s, f in imgs if not f.exists()]
    assert not missing, f'images without their file: {missing}'


def test_nothing_external(site):
    "No page or stylesheet loads anything from the internet (the check build.py runs after each build)."
    assert _build_module().external_refs(site) == []


def test_every_notebook_and_reference_report_has_its_page(site):
    "A page per library notebook, per experiment notebook and per committed reference report, with its outputs."
    build = _build_module()
    pages = build.collect_pages()
    kinds = {k: [p for p in pages if p['kind'] == k] for k in ('lib', 'experiment', 'report', 'sweep')}
    assert len(kinds['lib']) == len([p for p in (ROOT/'nbs').glob('*.ipynb') if p.name != 'index.ipynb'])
    assert len(kinds['experiment']) == len(list((ROOT/'nbs'/'experiments').glob('*.ipynb')))
    assert len(kinds['report']) == len([p for p in (ROOT/'reports'/'reference').glob('*/*/report.ipynb') if p.parent.name != 'sweeps'])
    for p in pages:
        f = site/f"{p['page']}.html"
        assert f.exists(), f"{p['src']}: no page {f.name}"
        html = f.read_text()
        if p['kind'] == 'lib':                            # the module's API: show_doc of every exported name has an anchor
            mod = importlib.import_module(f"reprlab.{p['page']}")
            for name in getattr(mod, '__all__', []):
                if callable(getattr(mod, name)): assert name in _text(html), f"{f.name}: nothing about {name}"
            n_png = sum('image/png' in o.get('data', {}) for c in json.loads(p['src'].read_text())['cells']
                        for o in c.get('outputs', []))
            assert html.count('<img') >= n_png, f"{f.name}: {html.count('<img')} images for {n_png} figure outputs"
        if p['kind'] in ('report', 'sweep'):              # every figure the run saved is on its page
            figs = list((p['src'].parent/'figures').glob('*.png'))
            assert html.count('<img') >= len(figs), f"{f.name}: {html.count('<img')} images for {len(figs)} figures"
