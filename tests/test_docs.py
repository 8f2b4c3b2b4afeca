"""The documentation site (`make docs`): built offline from the notebooks, checked in headless Chromium.

Builds the site once per test session (into a temporary folder, with its own intermediate tree), serves it on
127.0.0.1 and looks at the pages after their scripts ran (`chromium --dump-dom`, or Chromium driven over the DevTools
protocol with every host but 127.0.0.1 unreachable, which also reports each failed request and lays pages out): API
pages with their `show_doc` signatures, parameter tables and figures, math rendered by the local MathJax, the offline
search, reference reports with their figures, titles, one parameters table and staleness banners, sweep summaries
that fit the page and link their runs, metric pages. Screenshots of the pages go to test-artifacts/docs/.
"""
import functools, importlib, importlib.util, json, os, re, shutil, subprocess, sys, threading, time, urllib.request
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
    """The site, built once per session by docs/build.py (as `make docs` does) into a temporary folder; with
    REPRLAB_DOCS_SITE=DIR, the site already built in DIR (to rerun these tests while working on them)."""
    if os.environ.get('REPRLAB_DOCS_SITE'):
        out = Path(os.environ['REPRLAB_DOCS_SITE']).resolve()
        assert (out/'index.html').exists(), f'REPRLAB_DOCS_SITE={out}: no site there (build one with docs/build.py --out)'
        return out
    if not (DOCS/'node_modules'/'mathjax'/'es5'/'tex-chtml.js').exists():
        npm = shutil.which('npm')
        if npm is None: pytest.fail('no local MathJax (docs/node_modules) and no npm to install it: run `make docs`')
        subprocess.run([npm, 'ci', '--prefix', str(DOCS), '--no-audit', '--no-fund'], check=True, cwd=ROOT)
    tmp = tmp_path_factory.mktemp('docs')
    out = tmp/'site'
    cache = ROOT/'_proc'/'.cache'/'pages'
    if cache.is_dir():
        # the notebooks that `make docs` processed already, each entry keyed on everything it depends on: a page
        # whose notebook, docproc.py, nbdev or the library changed since is processed again
        shutil.copytree(cache, tmp/'proc'/'.cache'/'pages')
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
    for r in build.runs.reference_runs():                 # committed without its notebook (a sweep's points) too
        assert (site/f"{r['page']}.html").exists(), f"{r['folder'].relative_to(ROOT)}: no page"

# ----------------------------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol: failed requests, the DOM after scripts, layout.

class Browser:
    """Headless Chromium driven over the DevTools protocol. Every host but 127.0.0.1 is unreachable (unknown to its
    resolver, and behind a proxy that does not exist), so a page that loads anything from the internet fails it."""
    def __init__(self, profile: Path, width: int = 1280, height: int = 1000):
        import websocket   # websocket-client (requirements.txt)
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f'--user-data-dir={profile}', '--remote-debugging-port=0', f'--window-size={width},{height}',
             '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1', '--proxy-server=http://127.0.0.1:9', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, t0 = profile/'DevToolsActivePort', time.time()
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, f'chromium exited with status {self.proc.returncode}'
            assert time.time() - t0 < 60, 'chromium did not open its DevTools port in 60 s'
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f'http://127.0.0.1:{port}/json/list') as r:
            target = next(t for t in json.load(r) if t['type'] == 'page')
        self.ws = websocket.create_connection(target['webSocketDebuggerUrl'], timeout=60, suppress_origin=True)
        self.n, self.requests, self.failed, self.loaded = 0, {}, [], False
        for method in ('Page.enable', 'Network.enable', 'Runtime.enable'): self.call(method)

    def _event(self, msg):
        m, p = msg.get('method'), msg.get('params', {})
        if m == 'Network.requestWillBeSent': self.requests[p['requestId']] = p['request']['url']
        elif m == 'Network.responseReceived' and p['response']['status'] >= 400:
            self.failed.append(f"{p['response']['url']}: HTTP {p['response']['status']}")
        elif m == 'Network.loadingFailed':
            self.failed.append(f"{self.requests.get(p['requestId'], '?')}: {p.get('errorText')}{' (canceled)' if p.get('canceled') else ''}")
        elif m == 'Page.loadEventFired': self.loaded = True

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.n:
                assert 'error' not in msg, f'{method}: {msg["error"]}'
                return msg.get('result', {})
            self._event(msg)

    def settle(self, seconds: float):
        "Take the events of `seconds` more (requests a page makes after its load event)."
        import websocket
        end = time.time() + seconds
        while (left := end - time.time()) > 0:
            self.ws.settimeout(left)
            try: self._event(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException: break
        self.ws.settimeout(60)

    def visit(self, url: str, timeout: float = 60):
        "Open `url` and wait for its load event; `failed` then lists the requests that failed."
        self.requests, self.failed, self.loaded = {}, [], False
        self.call('Page.navigate', url=url)
        t0 = time.time()
        while not self.loaded:
            assert time.time() - t0 < timeout, f'{url} did not load in {timeout} s'
            self._event(json.loads(self.ws.recv()))

    def evaluate(self, expression: str):
        "The value of a JavaScript expression in the page (promises awaited)."
        r = self.call('Runtime.evaluate', expression=expression, awaitPromise=True, returnByValue=True)
        assert 'exceptionDetails' not in r, f"JavaScript error: {r['exceptionDetails']}"
        return r['result'].get('value')

    def screenshot(self, name: str):
        "The page as it is now, to test-artifacts/docs/NAME.png."
        import base64
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        data = self.call('Page.captureScreenshot', format='png')['data']
        (ARTIFACTS/f'{name}.png').write_bytes(base64.b64decode(data))

    def close(self):
        try: self.ws.close()
        finally:
            self.proc.terminate()
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: self.proc.kill()


@pytest.fixture(scope='session')
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp('cdp')/'profile')
    yield b
    b.close()


def _report_pages(build):
    "The pages (docs/build.py's entries) of the reference reports rendered from their executed notebooks."
    return [p for p in build.collect_pages() if p['kind'] == 'report']


def _rel_html(page: dict) -> str: return f"{page['page']}.html"

# ----------------------------------------------------------------------------------------------------------------
# API pages.

@pytest.mark.parametrize('module', ['competitive', 'topo'])
def test_api_page_has_figures(site, module):
    "The competitive and topo pages show their notebooks' figures (prototypes, explorer pictures): committed with outputs."
    nb = next((ROOT/'nbs').glob(f'[0-9]*_{module}.ipynb'))
    html = (site/f'{module}.html').read_text(encoding='utf-8')
    imgs = [site/unquote(s) for s in re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', html) if not s.startswith(('data:', 'http'))]
    pngs = [f for f in imgs if f.suffix == '.png' and f.exists() and f.stat().st_size > 2000]
    assert pngs, (f'{module}.html shows no figure: {nb.relative_to(ROOT)} is committed without outputs (execute it, '
                  f'nbdev-clean --fname it and commit it; `python docs/check_outputs.py` lists such notebooks)')


def _api_entry(html: str, name: str) -> str:
    "The text of the show_doc box that follows the heading `name`."
    for m in re.finditer(rf'<h[1-6][^>]*>{re.escape(name)}<', html):
        chunk = html[m.end():][:re.search(r'<h[1-6][ >]|$', html[m.end():]).start()]
        if 'api-entry' in chunk: return chunk
    raise AssertionError(f'no show_doc entry of {name}')


def test_show_doc_parameter_table_and_own_docstrings(site):
    "show_doc: a parameter table from the docments comments; a class built by another package's constructor shows its own docstring only."
    entry = _api_entry((site/'data.html').read_text(encoding='utf-8'), 'load_dataset')
    table = re.search(r'<table\b.*?</table>', entry, re.S)
    assert table, 'no parameter table in the load_dataset entry'
    head = [_text(h).strip() for h in re.findall(r'<th\b[^>]*>(.*?)</th>', table.group(0), re.S)]
    assert head == ['parameter', 'type', 'default', 'details'], head
    rows = {_text(r[0]).strip(): [_text(c).strip() for c in r] for r in
            [re.findall(r'<td\b[^>]*>(.*?)</td>', tr, re.S) for tr in re.findall(r'<tr\b.*?</tr>', table.group(0), re.S)] if r}
    assert rows.get('flat', [None])[1:3] == ['bool', 'True'] and 'False gives' in rows['flat'][3], rows.get('flat')
    entry = _text(_api_entry((site/'plots.html').read_text(encoding='utf-8'), 'LabFigure'))
    assert 'class LabFigure(matplotlib.figure.Figure)' in entry, entry[:500]
    assert 'displays itself as PNG' in entry   # reprlab's own docstring
    for theirs in ('figsize', 'facecolor', ':rc:', 'Discouraged', 'constrainedlayout_guide'):
        assert theirs not in entry, f'LabFigure shows matplotlib\'s documentation ({theirs!r}): {entry[:800]}'


def test_signatures_wrap_in_their_box(site, server, browser):
    "No show_doc signature is clipped or scrolled: each fits its box's width, and the page does not scroll sideways."
    for page in ('data.html', 'runner.html', 'temperature.html'):
        browser.visit(server + page)
        r = browser.evaluate("""(() => {
            const pres = [...document.querySelectorAll('.api-entry pre')];
            return {n: pres.length, page: document.documentElement.scrollWidth, width: window.innerWidth,
                    wide: pres.filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.slice(0, 80))};
        })()""")
        assert r['n'] > 0, f'{page}: no show_doc signature'
        assert not r['wide'], f'{page}: signatures wider than their box: {r["wide"]}'
        assert r['page'] <= r['width'] + 1, f'{page}: {r["page"]} px wide in a {r["width"]} px window'
        assert not browser.failed, f'{page}: failed requests {browser.failed}'

# ----------------------------------------------------------------------------------------------------------------
# Reference reports.

def test_report_pages_show_parameters_once(site):
    "A report page shows its run's parameters in one table (the run-info block), not the notebook's defaults nor papermill's cell."
    build = _build_module()
    pages = [(p['src'].parent, site/_rel_html(p)) for p in _report_pages(build)]
    pages += [(r['folder'], site/f"{r['page']}.html") for r in build.runs.reference_runs() if not r['notebook']]
    assert pages
    for folder, f in pages:
        params = json.loads((folder/'params.json').read_text())
        html = f.read_text(encoding='utf-8')
        article = re.search(r'<article\b.*?</article>', html, re.S).group(0)
        cells = lambda t: {_text(c).strip() for c in re.findall(r'<t[dh]\b[^>]*>(.*?)</t[dh]>', t, re.S)}
        tables = [t for t in re.findall(r'<table\b.*?</table>', article, re.S) if set(params) <= cells(t)]
        assert len(tables) == 1, f'{f.relative_to(site)}: {len(tables)} tables of its parameters'
        code = _text(' '.join(re.findall(r'<pre\b.*?</pre>', article, re.S)))
        assert '# Parameters' not in code, f"{f.relative_to(site)}: papermill's injected-parameters cell is shown"
        shown = [k for k in params if re.search(rf'^\s*{re.escape(k)}\s*(:\s*\w+\s*)?=', code, re.M)]
        assert len(shown) < max(2, len(params) // 2), f"{f.relative_to(site)}: the notebook's parameters cell is shown ({shown})"


def test_reference_reports_titled_and_linked_from_their_experiment(site):
    "Reports are titled by the parameters that tell them apart, and their experiment's page lists them under 'Reference runs'."
    build = _build_module()
    by_exp: dict = {}
    for p in _report_pages(build): by_exp.setdefault(p['experiment'], []).append(p)
    assert by_exp
    for exp, ps in by_exp.items():
        titles = [_text(re.search(r'<h1>(.*?)</h1>', (site/_rel_html(p)).read_text(encoding='utf-8'), re.S).group(1)).strip('¶ \n')
                  for p in ps]
        assert all(t.startswith(f'{exp} — ') for t in titles), titles
        assert len(set(titles)) == len(titles), f'{exp}: reports with the same title: {titles}'
        exp_page = site/'experiments'/f'{exp}.html'
        if not exp_page.exists(): continue
        html = exp_page.read_text(encoding='utf-8')
        assert re.search(r'<h2>Reference runs', html), f'{exp_page.name}: no Reference runs section'
        for p in ps:
            assert f"../{_rel_html(p)}" in html, f"{exp_page.name} does not link {_rel_html(p)}"
            assert titles[ps.index(p)] in _text(html)
    dream = sorted(p['run'] for p in by_exp.get('dreamcomp', []))
    if len(dream) == 2:   # the two committed dreamcomp runs differ in their grid size
        t = [_text(re.search(r'<h1>(.*?)</h1>', (site/f'reports/dreamcomp/{r}/report.html').read_text(encoding='utf-8'), re.S).group(1))
             for r in dream]
        assert all('kx=' in x and 'ky=' in x for x in t), t


def test_stale_reports_have_a_banner(site):
    "A report whose notebook, library or data changed since it ran (or that recorded no digests) says so at its top."
    build = _build_module()
    runs = build.runs
    cache: dict = {}
    for r in runs.reference_runs():
        changes = runs.staleness_of(r, cache)
        html = (site/f"{r['page']}.html").read_text(encoding='utf-8')
        banner = re.search(r'<div class="[^"]*\bstale-banner\b[^"]*">(.*?)</div>', html, re.S)
        if not changes:
            assert banner is None, f"{r['page']}: a staleness banner on a current run"
            continue
        assert banner, f"{r['page']}: stale ({changes}) without a banner"
        text = _text(banner.group(1))
        if changes == ['unknown']: assert 'Digests not recorded' in text, text
        else: assert 'Stale report' in text and all(c in text for c in changes), text


def test_sweep_summary_fits_and_links_runs(site, server, browser):
    "A sweep summary: its wide table scrolls inside its box, its runs are linked by relative links, no path of the machine that made it."
    sweeps = sorted(site.glob('reports/*/sweeps/*/report.html'))
    if not sweeps: pytest.skip('no committed sweep summary')
    for f in sweeps:
        html = f.read_text(encoding='utf-8')
        article = re.search(r'<article\b.*?</article>', html, re.S).group(0)
        assert not re.search(r'/[\w.-]+(?:/[\w.-]+)*/reports/reference/', _text(article)), \
            f'{f.relative_to(site)}: an absolute path: {re.search(r"/[^ ]*/reports/reference/[^ ]*", _text(article)).group(0)}'
        links = [h for h in re.findall(r'<a\b[^>]*href="([^"#]+)', article) if 'report.html' in h]
        assert links, f'{f.relative_to(site)}: links no run'
        for h in links:
            assert not urlparse(h).scheme and not h.startswith('/'), f'{f.relative_to(site)}: not a relative link: {h}'
            assert (f.parent/unquote(h)).resolve().exists(), f'{f.relative_to(site)}: dead link {h}'
        url = server + f.relative_to(site).as_posix()
        browser.visit(url)
        r = browser.evaluate('({page: document.documentElement.scrollWidth, width: window.innerWidth})')
        assert r['page'] <= r['width'] + 1, f'{f.relative_to(site)}: {r["page"]} px wide in a {r["width"]} px window'
        assert not browser.failed, f'{f.relative_to(site)}: failed requests {browser.failed}'
        browser.screenshot(f'sweep-{f.parent.name}')


_MATH_PROBE = r"""(async () => {
    if (!window.MathJax || !MathJax.startup) return {mathjax: false};
    await MathJax.startup.promise;
    const article = document.querySelector('article');
    const formulas = [...article.querySelectorAll('.math')];
    const unrendered = formulas.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60));
    // a formula typeset on the page, as a dialog's math would be: its fonts must load from the site too
    const probe = await MathJax.tex2chtmlPromise('\\sum_{i=1}^{n} x_i^2 = \\frac{\\alpha}{\\beta}', {display: true});
    article.appendChild(probe);
    MathJax.startup.document.clear(); MathJax.startup.document.updateDocument();
    await document.fonts.ready;
    await new Promise(r => setTimeout(r, 500));
    const fonts = [...document.fonts].filter(f => f.family.replace(/"/g, '').startsWith('MJX'));
    return {mathjax: true, formulas: formulas.length, unrendered, mathml: article.querySelectorAll('math').length,
            probe: probe.querySelectorAll('mjx-c').length,
            fonts: fonts.filter(f => f.status === 'loaded').length, font_errors: fonts.filter(f => f.status === 'error').length};
})()"""


def test_reference_reports_render_math_offline(site, server, browser):
    "Three reference report pages, with the network blocked: math rendered by the local MathJax, no failed request."
    build = _build_module()
    # the reports with the most formulas, from three experiments when there are three
    pages = sorted(_report_pages(build), key=lambda p: (-(site/_rel_html(p)).read_text(encoding='utf-8').count('class="math'), p['page']))
    chosen = []
    for p in pages:
        if p['experiment'] not in {q['experiment'] for q in chosen}: chosen.append(p)
    chosen = (chosen + [p for p in pages if p not in chosen])[:3]
    assert len(chosen) == min(3, len(pages)) > 0, 'no reference report page'
    for p in chosen:
        url = server + _rel_html(p)
        browser.visit(url)
        r = browser.evaluate(_MATH_PROBE)
        browser.settle(1)
        where = _rel_html(p)
        assert r['mathjax'], f'{where}: MathJax did not load'
        assert not r['unrendered'], f"{where}: formulas left as TeX: {r['unrendered']}"
        assert r['probe'] > 0 and r['fonts'] > 0 and not r['font_errors'], f'{where}: MathJax rendered no formula: {r}'
        assert not browser.failed, f'{where}: failed requests with the network blocked: {browser.failed}'
        text = browser.evaluate("document.querySelector('article').innerText")
        assert not re.search(r'(?<!\\)\$\$|\\\(|\\\[', text), f'{where}: raw TeX delimiters left on the page'
        browser.screenshot(f"report-math-{p['experiment']}")

# ----------------------------------------------------------------------------------------------------------------
# Metrics, the template.

def test_metric_pages(site):
    "A page per logged metric: each experiment's primary metric has one, linking (relatively) a report of that experiment."
    from reprlab.experiment import primary_metric
    from reprlab.experiment import notebook_metrics
    build = _build_module()
    index = site/'metrics'/'index.html'
    assert index.exists(), 'no metrics/index.html'
    assert 'metrics/index.html' in (site/'index.html').read_text(encoding='utf-8'), 'the home page does not link the metrics'
    checked = 0
    for exp in sorted({p['experiment'] for p in _report_pages(build)}):
        nb = ROOT/'nbs'/'experiments'/f'{exp}.ipynb'
        m = primary_metric(notebook_metrics(nb)) if nb.exists() else None
        refs = [r for r in build.runs.reference_runs() if r['experiment'] == exp and r['notebook']]
        if m is None or '*' in m.name or not any(r['metrics'].get(m.name) is not None for r in refs): continue
        page = site/'metrics'/f'{m.name}.html'
        assert page.exists(), f'no page of {exp}\'s primary metric {m.name}'
        assert f'href="{m.name}.html"' in index.read_text(encoding='utf-8'), f'metrics/index.html does not link {m.name}'
        html = page.read_text(encoding='utf-8')
        article = re.search(r'<article\b.*?</article>', html, re.S).group(0)
        links = re.findall(r'href="([^"#]*reports/' + re.escape(exp) + r'/[^"#]+/report\.html)"', article)
        assert links, f'metrics/{m.name}.html links no report of {exp}'
        for h in links:
            assert h.startswith('../') and (page.parent/unquote(h)).resolve().exists(), f'metrics/{m.name}.html: bad link {h}'
        assert not re.search(r'/[\w.-]+(?:/[\w.-]+)*/reports/reference/', _text(article)), f'metrics/{m.name}.html: an absolute path'
        checked += 1
    assert checked, 'no experiment with a reference report logged its primary metric'


def test_scorecard_page(site):
    "The Scorecard page: linked from the home page, one row per declared claim with its verdict, run ids linked to their pages."
    from reprlab.experiment import list_experiments
    from reprlab.experiment import VERDICTS, notebook_claims
    page = site/'claims.html'   # scorecard.html is the library notebook's page
    assert page.exists(), 'no claims.html'
    assert 'claims.html' in (site/'index.html').read_text(encoding='utf-8'), 'the home page does not link the scorecard'
    article = re.search(r'<article\b.*?</article>', page.read_text(encoding='utf-8'), re.S).group(0)
    claims = [c for p in list_experiments().values() for c in notebook_claims(p)]
    assert len(claims) >= 16, f'only {len(claims)} claims are declared'
    rows = re.findall(r'<tr[^>]*>.*?</tr>', article.split('<tbody>', 1)[1], re.S)
    assert len(rows) == len(claims), f'{len(rows)} rows for {len(claims)} claims'
    for row in rows:
        assert any(f'<strong>{v}' in row for v in VERDICTS), f'a row without a verdict: {_text(row)[:200]}'
    for h in re.findall(r'href="([^"#]*reports/[^"#]+/report\.html)"', article):
        assert (page.parent/unquote(h)).resolve().exists(), f'claims.html: bad link {h}'


def test_template_is_not_an_untitled_experiment(site):
    "The experiment template is titled as such, not 'Title of the experiment', in the sidebar and on its page."
    for f in (site/'index.html', site/'experiments'/'index.html', site/'experiments'/'_template.html'):
        if f.exists(): assert 'Title of the experiment</a>' not in f.read_text(encoding='utf-8'), f.name
    t = site/'experiments'/'_template.html'
    if t.exists(): assert 'Template for a new experiment' in re.search(r'<h1>(.*?)</h1>', t.read_text(encoding='utf-8'), re.S).group(1)


def test_check_outputs_flags_unexecuted_notebooks(tmp_path):
    "docs/check_outputs.py fails naming a notebook that exports a function and has no output, and passes one with outputs."
    nb = lambda outputs: {'cells': [{'cell_type': 'code', 'metadata': {}, 'source': '#| export\ndef f(x): return x', 'outputs': []},
                                     {'cell_type': 'code', 'metadata': {}, 'source': 'f(1)', 'outputs': outputs}],
                          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    bare, ran = tmp_path/'01_bare.ipynb', tmp_path/'02_ran.ipynb'
    bare.write_text(json.dumps(nb([])))
    ran.write_text(json.dumps(nb([{'output_type': 'execute_result', 'data': {'text/plain': '1'}, 'metadata': {}, 'execution_count': 1}])))
    script = DOCS/'check_outputs.py'
    r = subprocess.run([sys.executable, str(script), str(bare), str(ran)], capture_output=True, text=True)
    assert r.returncode == 1 and '01_bare.ipynb' in r.stderr and '02_ran.ipynb' not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, str(script), str(ran)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_paths_and_banners_of_runs():
    "docs/runs.py on made-up values: paths of another machine become relative links; what a banner says."
    runs = _build_module().runs
    rid = '20260101-000000-abcdef'
    nb = {'cells': [{'cell_type': 'markdown', 'source': 'see `/home/x/lab/reports/reference/exp/%s/report.html`' % rid},
                    {'cell_type': 'code', 'source': '', 'outputs': [
                        {'output_type': 'display_data', 'data': {
                            'text/markdown': 'store /srv/a/reports/reference/.store.sqlite; best: '
                                             f'[report](../../{rid}/report.html), [other](../../20260101-000000-000000/report.html)',
                            'text/html': '<table><tr><td>%s</td><td>20260101-000000-000000</td></tr></table>' % rid}}]}]}
    runs.relative_paths(nb, 'reports/exp/sweeps/s/report', {rid: f'reports/exp/{rid}/report.md'})
    assert nb['cells'][0]['source'] == f'see [`reports/reference/exp/{rid}/report.html`](../../../../reports/exp/{rid}/report.md)'
    out = nb['cells'][1]['outputs'][0]['data']
    assert out['text/markdown'] == (f'store reports/reference/.store.sqlite; best: [report](../../../../reports/exp/{rid}/report.md), '
                                    '[other](../../20260101-000000-000000/report.html)')   # a sweep summary's link to its best run
    assert f'<td><a href="../../../../reports/exp/{rid}/report.html">{rid}</a></td>' in out['text/html']
    assert '<td>20260101-000000-000000</td>' in out['text/html']   # a run without a page stays text
    run = {'experiment': 'no_such_experiment'}
    assert runs.stale_banner(run, []) == ''
    assert 'Digests not recorded' in runs.stale_banner(run, ['unknown'])
    b = runs.stale_banner(run, ['notebook', 'library (probes)'])
    assert 'Stale report' in b and 'notebook, library (probes) changed' in b and 'stale-banner' in b
    md = f'| 1 | e | 1 | 0.5 | - | [{rid}](reprlab-docs:no-report) |\n| 2 | e | 1 | 0.4 | - | {rid} |\n'
    assert runs._link_runs(md, {rid: f'reports/exp/{rid}/report.md'}, '../').count(f'[{rid}](../reports/exp/{rid}/report.md)') == 2
