# Sphinx configuration of reprlab's documentation site. Run through docs/build.py (`make docs`), which writes the
# Sphinx source tree (the processed notebooks) to _proc/ and passes `-c docs`.
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROC = Path(os.environ.get('REPRLAB_DOCS_PROC', ROOT/'_proc'))

project = 'reprlab'
author = 'reprlab developers'
copyright = 'reprlab developers'
try:
    from reprlab import __version__ as release
except Exception: release = ''
version = release

extensions = ['myst_nb']
root_doc = 'index'
source_suffix = {'.ipynb': 'myst-nb', '.md': 'myst-nb'}
exclude_patterns = ['.cache', '.build', '.static', '**/.ipynb_checkpoints']

# notebooks are shown with the outputs they were committed with, never executed here
nb_execution_mode = 'off'
nb_merge_streams = True
# text/markdown outputs (show_doc, say(), the run-info tables) are parsed as MyST, GitHub tables included
nb_render_markdown_format = 'myst'
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_dmath_double_inline = True
# headings get GitHub-style anchors (`data.ipynb#load_dataset`), the targets of nbdev's links between pages
myst_heading_anchors = 6

# everything local: MathJax from the npm package staged by build.py (`_static/mathjax/`), Sphinx's own search
mathjax_path = 'mathjax/tex-chtml.js'
html_static_path = [str(PROC/'.static'), 'static']
html_css_files = ['reprlab-docs.css']
# a favicon of the site's own (else browsers ask every page's server for /favicon.ico, a failed request)
html_favicon = 'static/favicon.svg'
html_theme = 'furo'
html_title = f'reprlab {release}'.strip()
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False
templates_path = []
pygments_style = 'default'


def _math_on_report_pages(app, pagename, templatename, context, doctree):
    """Reference report pages always load the local MathJax (Sphinx adds it only to pages whose source has math):
    a run's dialog may bring math in any run, and every report page renders it offline the same way."""
    if pagename.startswith('reports/'): context['has_maths_elements'] = True


def setup(app):
    # before sphinx.ext.mathjax's own handler (priority 500), which reads has_maths_elements
    app.connect('html-page-context', _math_on_report_pages, priority=400)
