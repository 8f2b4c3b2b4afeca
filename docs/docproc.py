"""Notebook processing for reprlab's documentation site, used by docs/build.py (see its docstring).

`work` runs in worker processes: nbdev's processors, then the Quarto -> MyST conversion (`to_myst`); its product is
cached. `link_pages` runs in the main process at every build, once all pages are known: it turns nbdev's links to
the hosted docs into links between the pages of this site.
"""
from __future__ import annotations

import json, os, re, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'

# --------------------------------------------------------------------------------------------------------------
# Step 1: nbdev processing.

def _filter_class():
    "nbdev's `FilterDefaults`, with the frontmatter processor left out and `exec_show_docs` replaced."
    import ast
    from nbdev import processors as P

    def _imports_only(cell):
        "The top-level import statements of `cell` (as source) when the cell has other statements too, else None."
        trees = cell.parsed_()
        if not trees: return None
        imps = [t for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))]
        if not imps or len(imps) == len(trees): return None
        return '\n'.join(ast.unparse(t) for t in imps)

    class exec_show_docs(P.exec_show_docs):
        """nbdev's `exec_show_docs`, except that of a cell mixing imports with other code (an example using a
        variable from an earlier cell, which nbdev does not run) only the import statements run."""
        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, 'k'): return
            if not P._do_eval(cell): return
            exported = {'export', 'exports', 'exporti', 'exec_doc'} & set(cell.directives_)
            imps = None if exported else _imports_only(cell)
            if imps is None: self.k.cell(cell)
            else: self.k.run_cell(imps)
            if (e := self.k.exc):
                raise Exception(f"docs: error in {getattr(self.nb, 'path_', '?')}, cell {cell.idx_}:\n{cell.source}\n"
                                f"{type(e).__name__}: {e}") from e

    class DocsFilter(P.FilterDefaults):
        def base_procs(self):
            procs = [exec_show_docs if p is P.exec_show_docs else p for p in super().base_procs()]
            # FrontmatterProc moves the first cell into Quarto's page metadata (dropping any prose in it): here the
            # first cell stays and gives the page its title. insert_warning adds an HTML comment.
            return [p for p in procs if p.__name__ not in ('FrontmatterProc', 'insert_warning')]

    return DocsFilter


def _nbdev_process(src: Path) -> dict:
    from fastcore.nbio import read_nb, nb2str
    nb = read_nb(src)
    nb.path_ = str(src)
    os.environ['IN_TEST'] = '1'  # as nbdev's own docs driver (serve_drv) does
    import warnings
    warnings.filterwarnings('ignore', message='Found cells containing imports and other code')  # handled above
    try: _filter_class()()(nb)
    finally: os.environ.pop('IN_TEST', None)
    return json.loads(nb2str(nb))


def work(job: dict):
    "Worker: nbdev-process one notebook and convert it to MyST, into `job['dst']`; returns (page, seconds)."
    t0 = time.time()
    nb = _nbdev_process(Path(job['src']))
    to_myst(nb, job)
    dst = Path(job['dst'])
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    Path(job['key_file']).write_text(job['key'])
    return job['page'], time.time() - t0

# --------------------------------------------------------------------------------------------------------------
# Step 2: Quarto -> MyST.

_OPT = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
_FENCE = re.compile(r'^\s*(`{3,}|~{3,})')
_HEADING = re.compile(r'^(#{1,6})(\s+.*)$')
_CALLOUT = re.compile(r'^(\s*)(:{3,})\s*\{([^}]*)\}\s*$')
_DIV_CLOSE = re.compile(r'^(\s*)(:{3,})\s*$')
# a Pandoc attribute block after a link or image: [source](url){target="_blank" style="..."}
_PANDOC_ATTR = re.compile(r'(\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+"[^"]*")?\))\{[^{}\n]*\}')
_CALLOUT_TYPES = ('note', 'tip', 'warning', 'caution', 'important')
_WIDGET = 'application/vnd.jupyter.widget-view+json'
# what myst-nb renders in HTML (its `nb_mime_priority` for html builders, widgets excepted)
_RENDERED = ('application/javascript', 'text/html', 'image/svg+xml', 'image/png', 'image/jpeg', 'image/gif',
             'text/markdown', 'text/latex', 'text/plain')
_TAGS = {('echo', 'false'): 'remove-input', ('output', 'false'): 'remove-output', ('include', 'false'): 'remove-cell',
         ('code-fold', 'true'): 'hide-input'}


def _src(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def _lines(text: str):
    "Yield (line, in_code_block) for each line of markdown `text`."
    fence = None
    for line in text.split('\n'):
        m = _FENCE.match(line)
        if fence is None:
            if m: fence = m.group(1)
            yield line, bool(m)
        else:
            s = line.strip()
            if s.startswith(fence) and not s.strip(fence[0]): fence = None
            yield line, True


def _callouts(text: str) -> str:
    "Quarto fenced divs -> MyST colon fences: `::: {.callout-note}` -> `:::{note}`, others -> `:::{container}`."
    out, depth = [], 0
    for line, code in _lines(text):
        m = None if code else _CALLOUT.match(line)
        if m:
            ind, colons, attrs = m.groups()
            classes = re.findall(r'\.([\w-]+)', attrs)
            title = re.search(r'title\s*=\s*"([^"]*)"', attrs)
            kind = next((c[8:] for c in classes if c.startswith('callout-') and c[8:] in _CALLOUT_TYPES), None)
            if kind and title: out += [f'{ind}{colons}{{admonition}} {title.group(1)}', f'{ind}:class: {kind}']
            elif kind: out.append(f'{ind}{colons}{{{kind}}}')
            else: out.append(f'{ind}{colons}{{container}} {" ".join(classes)}'.rstrip())
            depth += 1; continue
        if depth and not code and _DIV_CLOSE.match(line): depth -= 1
        out.append(line)
    return '\n'.join(out)


class _Headings:
    "Makes heading levels consecutive over a page: the first heading is the title (H1), the others H2 and below."
    def __init__(self): self.level = 0

    def __call__(self, text: str) -> str:
        out = []
        for line, code in _lines(text):
            m = None if code else _HEADING.match(line)
            if m:
                new = 1 if self.level == 0 else max(2, min(len(m.group(1)), self.level + 1))
                self.level = new
                line = '#'*new + m.group(2)
            out.append(line)
        return '\n'.join(out)


def _markdown(text: str, headings: _Headings) -> str:
    return headings(_PANDOC_ATTR.sub(r'\1', _callouts(text)))


def _cell_options(source: str):
    "Split the leading `#| key: value` lines (Quarto cell options, as nbdev leaves them) off a code cell."
    lines, opts = source.split('\n'), {}
    while lines and _OPT.match(lines[0]):
        k, v = _OPT.match(lines[0]).groups()
        opts[k] = v.strip('"\'').lower() if v else 'true'
        lines.pop(0)
    return opts, '\n'.join(lines)


def _show_doc_markdown(md: str) -> str:
    """A `show_doc` output as page markdown: its heading becomes a section of the page (listed in the page's
    contents, a link target, a search title), the rest goes in an `api-entry` box with the source link first."""
    md = re.sub(r'^\s*---\s*\n', '', md)
    src = re.search(r'^\[source\]\([^)]*\)\s*$', md, re.M)
    if src: md = md[:src.start()] + md[src.end():]
    m = re.search(r'^#{1,6}\s+.*$', md, re.M)
    if not m: return md
    body = md[m.end():].strip('\n')
    box = (f'{src.group(0).strip()}\n\n' if src else '') + body
    return f"{md[:m.start()].strip()}\n\n{m.group(0)}\n\n::::{{container}} api-entry\n{box}\n::::\n".lstrip()


def to_myst(nb: dict, job: dict):
    "A notebook as nbdev's processors leave it (Quarto conventions) -> one that myst-nb renders without warnings."
    headings = _Headings()
    for k in ('widgets', 'papermill'): nb['metadata'].pop(k, None)
    cells = []
    for cell in nb['cells']:
        cell['metadata'] = {k: v for k, v in cell.get('metadata', {}).items() if k == 'tags'}
        cell.pop('id', None)
        ctype = cell['cell_type']
        if ctype == 'raw':
            # a raw `---` yaml `---` block is Quarto's page metadata: not shown
            if not re.match(r'^\s*---\s*\n.*\n---\s*$', _src(cell['source']), re.S): cells.append(cell)
            continue
        if ctype == 'markdown':
            text = _markdown(_src(cell['source']), headings)
            if not text.strip(): continue
            cell['source'] = text
            if not cell.get('attachments'): cell.pop('attachments', None)
            cells.append(cell); continue
        opts, source = _cell_options(_src(cell['source']))
        tags = [t for t in cell['metadata'].get('tags', []) if t not in ('parameters', 'injected-parameters')]
        tags += [t for (k, v), t in _TAGS.items() if opts.get(k) == v and t not in tags]
        cell['metadata'] = {'tags': tags} if tags else {}
        cell['source'] = source.strip('\n')
        outputs = []
        for o in cell.get('outputs', []):
            data = o.get('data')
            if data is not None:
                if _WIDGET in data:
                    # a widget needs JavaScript from a CDN; its text is its repr (a progress bar's last state)
                    data.pop(_WIDGET)
                    if set(data) <= {'text/plain'}: continue
                for k in [k for k in data if k not in _RENDERED]: data.pop(k)  # a MIME type myst-nb cannot show
                if not data: continue
                o['metadata'] = {k: v for k, v in o.get('metadata', {}).items() if k in data}
                if 'text/markdown' in data: data['text/markdown'] = _markdown(_src(data['text/markdown']), headings)
            outputs.append(o)
        cell['outputs'] = outputs
        if not cell['source'].strip() and not outputs: continue
        mds = [o['data']['text/markdown'] for o in outputs if 'text/markdown' in o.get('data', {})]
        rest = [o for o in outputs if 'text/markdown' not in o.get('data', {}) and o.get('name') != 'stderr']
        if re.match(r'\s*show_doc\(', cell['source']) and 'remove-input' in tags and mds and not rest:
            # (a stderr output of a show_doc cell is a warning of the docstring parser, not documentation)
            cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': '\n\n'.join(map(_show_doc_markdown, mds))})
            continue
        cells.append(cell)
    nb['cells'] = cells
    if job['kind'] in ('report', 'sweep'): _report_header(nb, job)
    for i, c in enumerate(nb['cells']): c['id'] = f'cell-{i}'
    nb['nbformat'], nb['nbformat_minor'] = 4, 5


def _report_header(nb: dict, job: dict):
    "A paragraph under a reference report's title: which run, where its files are, its parameters."
    up = '../'*job['page'].count('/')
    folder = Path(job['src']).parent
    exp = job['experiment']
    exp_link = f'[`{exp}`]({up}experiments/{exp}.ipynb)' if (NBS/'experiments'/f'{exp}.ipynb').exists() else f'`{exp}`'
    what = 'Summary of the sweep' if job['kind'] == 'sweep' else 'Reference run'
    text = (f"{what} `{job['run']}` of the experiment {exp_link}, committed in `{folder.relative_to(ROOT).as_posix()}/` "
            f"with its metrics and figures.")
    params = folder/'params.json'
    if params.exists() and job['kind'] == 'report':
        try: p = json.loads(params.read_text())
        except ValueError: p = {}
        if p: text += ' Parameters: ' + ', '.join(f'`{k}={v}`' for k, v in p.items()) + '.'
    first_md = next((i for i, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown'), -1)
    nb['cells'].insert(first_md + 1, {'cell_type': 'markdown', 'metadata': {}, 'source': text})

# --------------------------------------------------------------------------------------------------------------
# Links between pages (main process, every build).

def _slugify(title: str) -> str:
    from myst_parser.slugs import github_slugify
    return github_slugify(title)


def page_slugs(nb: dict) -> set:
    "The heading anchors (GitHub-style slugs, as myst-parser makes them) of a processed page."
    from myst_parser.slugs import unique_slug
    slugs: list = []
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        for line, code in _lines(_src(c['source'])):
            m = None if code else _HEADING.match(line)
            if not m: continue
            title = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', m.group(2).strip())
            title = re.sub(r'[`*]', '', title)
            slugs.append(unique_slug(_slugify(title), slugs))
    return set(slugs)


def link_pages(nb: dict, page: str, doc_url: str, slugs: dict) -> dict:
    """nbdev's links to the hosted docs (`doc_url`PAGE.html#name) -> links to this site's pages: MyST document
    links in markdown (checked by Sphinx), relative URLs in HTML outputs. An anchor that the page lacks is dropped."""
    if not doc_url: return nb
    up = '../'*page.count('/')
    pat = re.compile(re.escape(doc_url) + r'([\w./-]*?)\.html(?:#([\w.\-]+))?')

    def sub(m, html):
        target, anchor = m.group(1), m.group(2)
        if target not in slugs: return m.group(0)  # not a page of this site: stays a link to the hosted docs
        slug = _slugify(anchor) if anchor else ''
        frag = f'#{slug}' if slug and slug in slugs[target] else ''
        return f"{up}{target}.{'html' if html else 'ipynb'}{frag}"

    for c in nb['cells']:
        if c['cell_type'] == 'markdown': c['source'] = pat.sub(lambda m: sub(m, False), _src(c['source']))
        for o in c.get('outputs', []):
            d = o.get('data', {})
            if 'text/markdown' in d: d['text/markdown'] = pat.sub(lambda m: sub(m, False), _src(d['text/markdown']))
            if 'text/html' in d: d['text/html'] = pat.sub(lambda m: sub(m, True), _src(d['text/html']))
    return nb
