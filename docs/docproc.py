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


# --------------------------------------------------------------------------------------------------------------
# show_doc as this site renders it: the signature packed into lines that fit (the box wraps the rest), the
# docstring, and a table of the parameters from their docments comments (as nbdev's show_doc gave before 3.x:
# parameter, type, default, details). A class whose constructor comes from another package (a matplotlib Figure,
# an exception) shows its own bases and docstring only, never the other package's parameters and docstrings.

SIG_WIDTH = 76   # characters per line of a rendered signature (about what the box shows at furo's widest)


def _is_own(obj) -> bool:
    "Whether `obj` is defined by the documented project: in reprlab, or in the notebook (show_doc's kernel)."
    mod = getattr(obj, '__module__', None) or '__main__'
    return mod == '__main__' or mod == 'reprlab' or mod.startswith('reprlab.')


def _class_name(cls) -> str:
    "A class as a signature names it: reprlab's and builtins by name, others with their module."
    return cls.__qualname__ if _is_own(cls) or cls.__module__ == 'builtins' else f'{cls.__module__}.{cls.__qualname__}'


def _init_owner(cls):
    "The class in `cls`'s MRO whose `__init__` (or `__new__`) builds its instances; None for a dataclass's own."
    import dataclasses
    if dataclasses.is_dataclass(cls) and '__init__' in cls.__dict__: return None
    for c in cls.__mro__:
        if '__init__' in c.__dict__ or ('__new__' in c.__dict__ and c is not object): return c
    return object


def _cell(text) -> str:
    "Text for a Markdown table cell: one line, pipes escaped."
    return ' '.join(str(text).split()).replace('|', r'\|')


def _code(text) -> str:
    "Inline code for a table cell (a value with backticks gets a longer fence)."
    text = ' '.join(str(text).split())
    fence = '``' if '`' in text else '`'
    pad = ' ' if text.startswith('`') or text.endswith('`') else ''
    return f'{fence}{pad}{text}{pad}{fence}'.replace('|', r'\|')


def _escape_stars(text: str) -> str:
    "`*` outside code spans escaped, so that a docstring's `(rows*H, cols*W)` stays text inside the italics."
    parts = re.split(r'(`+[^`]*`+)', text)
    return ''.join(p if i % 2 else p.replace('*', r'\*') for i, p in enumerate(parts))


def _pack(head: str, parts: list[str], tail: str, width: int = SIG_WIDTH) -> str:
    "`head(p1, p2, ...)tail` on one line when it fits, else one argument line after another, packed to `width`."
    one = f"{head}({', '.join(parts)}){tail}"
    if len(one) <= width or not parts: return one
    lines, cur = [], ''
    for p in parts:
        item = p + ','
        if cur and len(cur) + 1 + len(item) > width - 4: lines.append(cur); cur = item
        else: cur = f'{cur} {item}' if cur else item
    lines.append(cur.rstrip(','))
    return f"{head}(\n" + '\n'.join('    ' + l for l in lines) + f"\n){tail}"


def site_markdown(sym, nm: str, fn: str, title_level: int = 3) -> str:
    "The show_doc Markdown of `sym` for this site (see above); `nm` its displayed name, `fn` its full name."
    import inspect
    from fastcore.docments import docments, _type_str, _fmt_default
    from nbdev.doclinks import NbdevLookup
    empty = inspect.Parameter.empty
    md = '---\n\n'
    try: src = NbdevLookup().code(fn)
    except Exception: src = None
    if src: md += f'[source]({src})\n\n'
    md += f"{'#'*title_level} {nm}\n\n"

    is_class = inspect.isclass(sym)
    foreign = None                      # the other package's class whose constructor `sym` inherits
    if is_class:
        owner = _init_owner(sym)
        if owner is not None and not _is_own(owner): foreign = owner
        doc = sym.__dict__.get('__doc__') or ''
        if not doc and owner is not None and owner is not object and _is_own(owner):
            doc = inspect.getdoc(owner.__init__) or ''
    else:
        doc = (getattr(sym, '__doc__', None) or '') if _is_own(sym) or not callable(sym) else ''
        if not callable(sym): doc = ''
    doc = inspect.cleandoc(doc) if doc else ''

    rows, has_docment = [], False
    if not callable(sym):
        r = repr(sym)
        md += f"```python\n{nm} = {r if len(r) <= 200 else r[:200] + '...'}\n```\n\n"
    elif foreign is not None:
        bases = ', '.join(_class_name(b) for b in sym.__bases__)
        md += f"```python\nclass {nm}({bases})\n```\n\n"
    else:
        try: dm = docments(sym, full=True, args_kwargs=True)   # (without args_kwargs a `**kw` comment goes to the return)
        except Exception: dm = {}
        parts, star, prev = [], False, None
        for k, v in dm.items():
            if k in ('return', 'self'): continue
            kind = v.get('kind')
            if prev == inspect.Parameter.POSITIONAL_ONLY and kind != prev: parts.append('/')
            if kind == inspect.Parameter.KEYWORD_ONLY and not star: parts.append('*'); star = True
            if kind == inspect.Parameter.VAR_POSITIONAL: star = True
            pre = '*' if kind == inspect.Parameter.VAR_POSITIONAL else '**' if kind == inspect.Parameter.VAR_KEYWORD else ''
            anno = v.get('anno', empty)
            # docments gives an unannotated parameter the type of its default: not for None
            anno = '' if anno in (empty, None) or (anno is type(None) and v.get('default') is None) else _type_str(anno)
            default = _fmt_default(v['default']) if v.get('default', empty) is not empty else ''
            parts.append(pre + k + (f':{anno}' if anno else '') + (f'={default}' if default else ''))
            rows.append((pre + k, anno, default, v.get('docment') or ''))
            has_docment |= bool(v.get('docment'))
            prev = kind
        if prev == inspect.Parameter.POSITIONAL_ONLY: parts.append('/')
        ret = dm.get('return') or {}
        ret_anno = ret.get('anno', empty)
        ret_anno = _type_str(ret_anno) if not is_class and ret_anno not in (empty, None, 'None') else ''
        if ret.get('docment') and not is_class: has_docment = True
        prefix = 'async def ' if inspect.iscoroutinefunction(sym) else '' if is_class else 'def '
        if not dm: sig = f'{prefix}{nm}(...)'
        else: sig = _pack(f'{prefix}{nm}', parts, f'->{ret_anno}' if ret_anno else '')
        md += f"```python\n{sig}\n```\n\n"
    if doc:
        first, _, rest = doc.partition('\n')
        md += f"*{_escape_stars(first.strip())}*" + (f"\n{rest}" if rest.strip() else '') + '\n\n'
    if foreign is not None:
        md += f"Constructed with the arguments of `{_class_name(foreign)}` (documented there).\n\n"
    if rows and has_docment:
        cols = [i for i in (1, 2) if any(r[i] for r in rows)]   # type and default, when any parameter has one
        head = ['parameter'] + [('type', 'default')[i - 1] for i in cols] + ['details']
        md += '| ' + ' | '.join(head) + ' |\n|' + '---|'*len(head) + '\n'
        for r in rows:
            md += '| ' + ' | '.join([_code(r[0])] + [_code(r[i]) if r[i] else '' for i in cols] + [_cell(r[3])]) + ' |\n'
        ret = dm.get('return') or {}
        if not is_class and (ret.get('docment') or ret_anno):
            md += '| ' + ' | '.join(['**returns**'] + [(_code(ret_anno) if ret_anno else '') if i == 1 else '' for i in cols]
                                     + [_cell(ret.get('docment') or '')]) + ' |\n'
    return md.rstrip('\n') + '\n'


def _site_renderer():
    "A renderer class for nbdev's `show_doc` that produces `site_markdown`."
    from nbdev.showdoc import BasicMarkdownRenderer

    class SiteRenderer(BasicMarkdownRenderer):
        _reprlab_site = True
        def _repr_markdown_(self): return site_markdown(self.sym, self.nm, self.fn, self.title_level)

    return SiteRenderer


def _nbdev_process(src: Path) -> dict:
    from fastcore.nbio import read_nb, nb2str
    import nbdev.showdoc
    # show_doc looks its default renderer up in its module at each call: every show_doc in this process renders for
    # the site (the processors' kernel runs in this process)
    if not getattr(nbdev.showdoc.BasicMarkdownRenderer, '_reprlab_site', False):
        nbdev.showdoc.BasicMarkdownRenderer = _site_renderer()
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
        tags = list(cell['metadata'].get('tags', []))
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
    if job['kind'] in ('report', 'sweep'): _drop_parameter_cells(nb)
    for c in nb['cells']:   # papermill's tags mean nothing to myst-nb
        tags = [t for t in c.get('metadata', {}).get('tags', []) if t not in ('parameters', 'injected-parameters')]
        if tags: c['metadata']['tags'] = tags
        else: c.get('metadata', {}).pop('tags', None)
    for i, c in enumerate(nb['cells']): c['id'] = f'cell-{i}'
    nb['nbformat'], nb['nbformat_minor'] = 4, 5


def _drop_parameter_cells(nb: dict):
    """A report's parameters cell (the notebook's defaults) and papermill's injected-parameters cell are left out:
    the run-info block shows the run's parameters, once. A markdown cell that is only a heading right before them
    (`## Parameters`) goes with them."""
    cells, out = nb['cells'], []
    for i, c in enumerate(cells):
        tags = set(c.get('metadata', {}).get('tags', []))
        if c['cell_type'] == 'code' and tags & {'parameters', 'injected-parameters'}: continue
        if c['cell_type'] == 'markdown' and re.fullmatch(r'\s*#{1,6}\s+[^\n]*\s*', _src(c['source'])):
            nxt = next((d for d in cells[i + 1:] if d['cell_type'] != 'markdown' or _src(d['source']).strip()), None)
            if nxt is not None and nxt['cell_type'] == 'code' and \
                    set(nxt.get('metadata', {}).get('tags', [])) & {'parameters', 'injected-parameters'}: continue
        out.append(c)
    nb['cells'] = out


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
