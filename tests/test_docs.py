"""The README and the docs site (`tools/docs.py`): built from the notebooks, then checked in headless Chromium.

The browser is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: NUL-separated JSON on
file descriptors 3 and 4), so the check needs nothing beyond Debian's `chromium` package. Pages are served by a
loopback `http.server` on 127.0.0.1. Screenshots land in `_docs/_screenshots/`.
"""
import fcntl, functools, http.server, importlib.util, json, os, posixpath, queue, re, shutil, subprocess, sys
import tempfile, threading, time
from pathlib import Path
from urllib.parse import urlsplit, unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('ltkd_docs_tool', ROOT / 'tools' / 'docs.py')
docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs)

CHROMIUM = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--no-default-browser-check', '--disable-extensions', '--hide-scrollbars', '--mute-audio',
         '--force-device-scale-factor=1', '--window-size=1280,1000']


# ---------------------------------------------------------------------------------------------- the tool's pieces
def test_page_names():
    nbs = ROOT / 'nbs'
    assert docs.page_name(nbs / '00_losses.ipynb', nbs) == 'losses.html'
    assert docs.page_name(nbs / '05_distill.ipynb', nbs) == 'distill.html'
    assert docs.page_name(nbs / 'index.ipynb', nbs) == 'index.html'
    assert docs.page_name(nbs / 'tutorials' / 'quickstart.ipynb', nbs) == 'tutorials/quickstart.html'


def test_cell_options():
    opts, code = docs.cell_options('#| echo: false\n#| code-summary: "Exported source"\nshow_doc(f)\n#| not an option')
    assert opts == {'echo': 'false', 'code-summary': 'Exported source'}
    assert code == 'show_doc(f)\n#| not an option'
    assert docs.cell_options('x = 1') == ({}, 'x = 1')


def test_heading_ids_match_nbdev_links():
    "nbdev links `DistillCallback.after_loss` to `#distillcallback.after_loss` (pandoc's identifiers)"
    assert docs._pandoc_id('DistillCallback.after_loss') == 'distillcallback.after_loss'
    assert docs._pandoc_id('<code>kd_loss</code>') == 'kd_loss'
    assert docs._pandoc_id('1. The maths, in short!') == 'the-maths-in-short'
    page = docs.Page('losses.html', 'Losses', tempfile.mkdtemp())
    h = page.markdown('## Same\n\n## Same\n\n### kd_loss')
    assert re.findall(r'<h\d id="([^"]+)"', h) == ['same', 'same-1', 'kd_loss']
    assert page.toc == [(2, 'same', 'Same'), (2, 'same-1', 'Same'), (3, 'kd_loss', 'kd_loss')]


def test_fix_links():
    "Links to the published site and to notebooks become relative links to the built pages"
    site = 'https://ltkd-fastai.github.io/ltkd_fastai/'
    def hrefs(h, page, nb_dir): return re.findall(r'(?:href|src)="([^"]*)"', docs.fix_links(h, page, site, nb_dir))
    h = (f'<a href="{site}losses.html#kd_loss">a</a><a href="{site}tutorials/quickstart.html">b</a>'
         f'<a href="https://github.com/x">d</a><a href="#top">e</a><img src="{docs.COLAB_BADGE}">')
    assert hrefs(h + '<a href="../00_losses.ipynb#kd_loss">c</a>', 'tutorials/quickstart.html', 'tutorials') == [
        '../losses.html#kd_loss', 'quickstart.html', 'https://github.com/x', '#top', '../_static/colab-badge.svg',
        '../losses.html#kd_loss']
    assert hrefs(h + '<a href="tutorials/quickstart.ipynb">c</a>', 'index.html', '') == [
        'losses.html#kd_loss', 'tutorials/quickstart.html', 'https://github.com/x', '#top', '_static/colab-badge.svg',
        'tutorials/quickstart.html']
    assert 'data-doclink' in docs.fix_links(h, 'index.html', site, '')


def test_prune_doclinks():
    "A doc link to a name without a heading (nbdev links private helpers too) becomes plain text"
    ids = {'models.html': {'get_model'}, 'tutorials/quickstart.html': set()}
    h = ('<a href="models.html#get_model" data-doclink><code>get_model</code></a> '
         '<a href="models.html#_create" data-doclink><code>_create</code></a> <a href="models.html#_x">x</a>')
    assert docs.prune_doclinks(h, 'index.html', ids) == (
        '<a href="models.html#get_model"><code>get_model</code></a> <code>_create</code> <a href="models.html#_x">x</a>')
    assert docs.prune_doclinks('<a href="../models.html#_create" data-doclink>c</a>', 'tutorials/quickstart.html', ids) == 'c'


def test_markdown_links_and_attributes():
    "nbdev's `[source](url){target=...}` becomes an HTML link; its doc links inside code fences are undone"
    h = docs._md('[source](https://x/y.py#L6){target="_blank" style="float:right"}')
    assert '<a href="https://x/y.py#L6" target="_blank" style="float:right">source</a>' in h and '{' not in h
    md = 'see [`f`](https://s/a.html#f)\n\n```python\ndef g(\n    x, # like [`f`](https://s/a.html#f)\n)\n```\n'
    assert docs._unlink_fences(md) == 'see [`f`](https://s/a.html#f)\n\n```python\ndef g(\n    x, # like `f`\n)\n```\n'


def test_stream_text_as_a_terminal_shows_it():
    "fastprogress's console bars overwrite their line with \\r: only what a terminal would show is kept"
    s = '\u2588\repoch  loss\n\u2588\r\rEpoch 1/2 : |--| 0%\rEpoch 1/2 : |##| 100%\rEpoch 1/2 :                      \r0  0.5  00:01\n'
    assert docs._terminal(s) == 'epoch  loss\n0  0.5  00:01\n'
    assert docs._terminal('abc\rX\n\x1b[31mred\x1b[0m') == 'Xbc\nred'


def test_readme_markdown_hides_and_keeps():
    "nbdev's processing then nbconvert: hidden cells go, `echo: false` keeps the output only, outputs stay"
    nb = {'cells': [
        {'cell_type': 'raw', 'metadata': {}, 'source': '---\ndescription: A summary\ntitle: proj\n---\n\n'},
        {'cell_type': 'markdown', 'metadata': {}, 'source': docs.WARNING},
        {'cell_type': 'markdown', 'metadata': {}, 'source': 'Some *prose*.'},
        {'cell_type': 'code', 'metadata': {}, 'execution_count': 1, 'source': '1 + 1',
         'outputs': [{'output_type': 'execute_result', 'execution_count': 1, 'metadata': {},
                      'data': {'text/plain': ['2']}}]},
        {'cell_type': 'code', 'metadata': {}, 'execution_count': 2, 'source': '#| echo: false\nprint("hi")',
         'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': ['hi\n']}]},
        {'cell_type': 'code', 'metadata': {}, 'execution_count': 3, 'source': '#| include: false\nsecret()',
         'outputs': []}],
        'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    md, imgs = docs.readme_markdown(nb)
    assert md.startswith(f'# proj\n\n{docs.WARNING}\n\n> A summary\n\nSome *prose*.\n')
    assert '```python\n1 + 1\n```\n\n    2\n' in md
    assert '    hi\n' in md and 'print' not in md and 'secret' not in md and '#|' not in md
    assert imgs == {}


def test_notebook_processing(tmp_path):
    "A notebook runs like under nbdev_test (flagged cells skipped), then nbdev's processors hide and document"
    import nbformat
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    nb = nbformat.v4.new_notebook(cells=[
        md('# A title\n\n> A summary'),
        code('#| hide\nfrom nbdev.showdoc import show_doc\nsecret = 41'),
        code('#| export\ndef f(a:int=1, # the a\n     ): "Add one to `a`."; return a + 1'),
        code('f(secret)'),
        code('#| slow\nraise RuntimeError("slow cells are skipped")'),
        code('#| download\nraise RuntimeError("download cells are skipped")'),
        code('#| eval: false\nraise RuntimeError("not evaluated")'),
        code('print("done")')], metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'py'}})
    src, dest = tmp_path / 'nb.ipynb', tmp_path / 'out' / 'nb.ipynb'
    nbformat.write(nb, src)
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'docs.py'), '_proc_one', str(src), str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    pnb = json.loads(dest.read_text(encoding='utf-8'))
    assert docs.frontmatter(pnb) == {'title': 'A title', 'description': 'A summary', 'output-file': 'nb.html'}
    cells = [(c['cell_type'], docs._text(c['source'])) for c in pnb['cells']]
    assert not any('secret = 41' in s or 'def f(' in s for _, s in cells)      # hidden and exported cells are gone
    outs = {docs.cell_options(s)[1]: c.get('outputs', []) for c, (t, s) in zip(pnb['cells'], cells) if t == 'code'}
    assert docs._text(outs['f(secret)'][0]['data']['text/plain']) == '42'
    assert docs._text(outs['print("done")'][0]['text']) == 'done\n'
    assert not any(o.get('output_type') == 'error' for v in outs.values() for o in v)
    sd = [v for k, v in outs.items() if k == 'show_doc(f)']                  # added by nbdev for the exported f
    assert sd and '### f' in docs._text(sd[0][0]['data']['text/markdown'])
    assert 'Add one to' in docs._text(sd[0][0]['data']['text/markdown'])


def test_readme_is_current(tmp_path):
    "README.md is what `python tools/docs.py readme` writes from nbs/index.ipynb (executed, so outputs are real)"
    if docs.have_quarto(): pytest.skip('Quarto is installed: README.md is then written by nbdev_readme')
    new = docs.build_readme(dest=tmp_path / 'README.md', quiet=True).read_text(encoding='utf-8')
    assert '#| hide' not in new
    assert (ROOT / 'README.md').read_text(encoding='utf-8') == new, 'README.md is stale: run `python tools/docs.py readme`'


def test_readme_content():
    "The README's two commands (.ci/run runs the second), its example's output and the Colab badge"
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    lines = text.splitlines()
    assert 'pip install -e . && ltkd_experiment' in lines
    assert 'pip install -e ".[dev]" && nbdev_test && python -m pytest tests' in lines
    assert [l for l in lines if l.startswith('pip install -e ".[dev]"')][0] == \
        'pip install -e ".[dev]" && nbdev_test && python -m pytest tests'
    assert 'python tools/docs.py site' in text
    git_url = docs._cfg().git_url.rstrip('/')
    colab = f'https://colab.research.google.com/github/{git_url.split("github.com/")[1]}/blob/main/nbs/tutorials/quickstart.ipynb'
    assert f'[![Open in Colab]({docs.COLAB_BADGE})]({colab})' in text
    assert re.search(r'^    \S', text, flags=re.M), 'the example has no output'


# ---------------------------------------------------------------------------------------------- headless Chromium
class Chromium:
    "Headless Chromium driven over the DevTools protocol on a pipe (stdlib only)"
    def __init__(self, exe, user_data_dir, log_path):
        r_in, self._w = os.pipe()      # we write commands -> chromium reads fd 3
        self._r, w_out = os.pipe()     # chromium writes fd 4 -> we read
        def remap():
            a, b = fcntl.fcntl(r_in, fcntl.F_DUPFD, 10), fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3); os.dup2(b, 4)
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen([exe, *FLAGS, f'--user-data-dir={user_data_dir}', '--remote-debugging-pipe',
                                      'about:blank'], pass_fds=(3, 4), preexec_fn=remap,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        os.close(r_in); os.close(w_out)
        self._id, self._pending, self._lock = 0, {}, threading.Lock()
        self.events = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b''
        while True:
            chunk = os.read(self._r, 1 << 16)
            if not chunk: break
            buf += chunk
            *msgs, buf = buf.split(b'\0')
            for m in msgs:
                msg = json.loads(m)
                if 'id' in msg:
                    with self._lock: q = self._pending.pop(msg['id'], None)
                    if q: q.put(msg)
                else: self.events.put(msg)

    def send(self, method, params=None, session=None, timeout=60):
        with self._lock:
            self._id += 1; i = self._id
            q = self._pending[i] = queue.Queue()
        msg = {'id': i, 'method': method, 'params': params or {}}
        if session: msg['sessionId'] = session
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        try: res = q.get(timeout=timeout)
        except queue.Empty: raise TimeoutError(f'{method}: no answer from Chromium in {timeout} s') from None
        if 'error' in res: raise RuntimeError(f'{method}: {res["error"]}')
        return res.get('result', {})

    def close(self):
        try: self.send('Browser.close', timeout=10)
        except Exception: pass
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self._w); self._log.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


PAGE_INFO = r"""(() => {
  const main = document.querySelector('main');
  const bare = main.cloneNode(true);
  bare.querySelectorAll('pre, code, .katex, script, style').forEach(e => e.remove());
  return {
    title: (document.querySelector('h1.title') || {}).textContent || '',
    mathRendered: document.documentElement.dataset.mathRendered === 'true',
    text: bare.textContent,
    katex: main.querySelectorAll('.katex').length,
    katexDisplay: main.querySelectorAll('.katex-display').length,
    katexErrors: main.querySelectorAll('.katex-error').length,
    katexFont: document.fonts.check('16px KaTeX_Main'),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
    figures: main.querySelectorAll('.output.figure img, .output.figure svg').length,
    sidebar: [...document.querySelectorAll('nav.sidebar a')].map(a => a.getAttribute('href')),
    highlighted: main.querySelectorAll('.highlight .k, .highlight .kn, .highlight .nf').length,
  };
})()"""


def _visit(browser, session, url, timeout=60):
    "Load `url`; return (page info, problems seen: console errors, exceptions, failed or off-machine requests)"
    while not browser.events.empty(): browser.events.get_nowait()
    browser.send('Page.navigate', {'url': url}, session=session)
    problems, reqs, loaded, t0 = [], {}, False, time.time()
    def drain(until):
        nonlocal loaded
        while time.time() < until:
            try: ev = browser.events.get(timeout=0.1)
            except queue.Empty:
                if loaded: return
                continue
            m, p = ev.get('method'), ev.get('params', {})
            if m == 'Page.loadEventFired': loaded = True
            elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
                problems.append('console.error: ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in p.get('args', [])))
            elif m == 'Runtime.exceptionThrown':
                d = p.get('exceptionDetails', {})
                problems.append('exception: ' + d.get('exception', {}).get('description', d.get('text', '')))
            elif m == 'Log.entryAdded' and p.get('entry', {}).get('level') == 'error':
                problems.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == 'Network.requestWillBeSent':
                u = p.get('request', {}).get('url', '')
                reqs[p.get('requestId')] = u
                if not re.match(r'^(http://127\.0\.0\.1:\d+/|data:|about:|blob:)', u): problems.append(f'off-machine request: {u}')
            elif m == 'Network.loadingFailed':
                problems.append(f"failed to load {reqs.get(p.get('requestId'), '?')}: {p.get('errorText')}")
            elif m == 'Network.responseReceived' and p.get('response', {}).get('status', 200) >= 400:
                problems.append(f"HTTP {p['response']['status']}: {p['response'].get('url')}")
    drain(t0 + timeout)
    assert loaded, f'{url} did not load in {timeout} s'
    drain(time.time() + 0.3)  # late console messages
    info = browser.send('Runtime.evaluate', {'expression': PAGE_INFO, 'returnByValue': True}, session=session)
    assert 'exceptionDetails' not in info, info
    return info['result']['value'], problems


def _screenshot(browser, session, path, full=False):
    import base64
    p = {'format': 'png'}
    if full:
        m = browser.send('Page.getLayoutMetrics', session=session)
        h = min(int(m.get('cssContentSize', m.get('contentSize'))['height']), 8000)
        p.update(captureBeyondViewport=True, clip={'x': 0, 'y': 0, 'width': 1280, 'height': h, 'scale': 1})
    data = browser.send('Page.captureScreenshot', p, session=session)['data']
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(base64.b64decode(data))


def crawl(out, pages, shots, shoot=('index', 'losses', 'maths')):
    "Serve `out` on 127.0.0.1, visit `pages` in headless Chromium; {page: (info, problems)}; screenshots to `shots`"
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{server.server_address[1]}/'
    udd = tempfile.mkdtemp(prefix='ltkd-chromium-')
    browser = Chromium(CHROMIUM, udd, udd + '.log')
    try:
        target = browser.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        session = browser.send('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        for domain in ('Page', 'Runtime', 'Log', 'Network'): browser.send(f'{domain}.enable', session=session)
        browser.send('Emulation.setDeviceMetricsOverride',
                     {'width': 1280, 'height': 1000, 'deviceScaleFactor': 1, 'mobile': False}, session=session)
        visits = {}
        for page in pages:
            visits[page] = _visit(browser, session, base + page)
            stem = page.replace('/', '_')[:-len('.html')]
            if stem in shoot:
                _screenshot(browser, session, Path(shots) / f'{stem}.png')
                _screenshot(browser, session, Path(shots) / f'{stem}-full.png', full=True)
        return base, visits
    finally:
        browser.close()
        server.shutdown(); server.server_close()
        shutil.rmtree(udd, ignore_errors=True); Path(udd + '.log').unlink(missing_ok=True)


@pytest.fixture(scope='module')
def site():
    "Build the site (as `python tools/docs.py site` does without Quarto), then visit every page in Chromium"
    if CHROMIUM is None:
        pytest.skip('Chromium not found (Debian: apt-get install chromium): the docs site is not checked in a browser')
    if not docs.katex_available():
        pytest.skip("KaTeX not available: needs npm (to fetch the katex package) or Debian's libjs-katex")
    cfg = docs._cfg()
    nbs_path = Path(cfg.nbs_path)
    try: out, errors = docs.build_site(out=ROOT / cfg.doc_path.name, quiet=True)
    except SystemExit as e: raise RuntimeError(str(e)) from None  # an Exception, so pytest reports it once per module
    assert not errors
    nbs = docs.doc_notebooks(nbs_path)
    pages = [docs.page_name(nb, nbs_path) for nb in nbs]
    procd = {docs.page_name(nb, nbs_path): json.loads((ROOT / '_proc' / nb.relative_to(nbs_path)).read_text(encoding='utf-8'))
             for nb in nbs}
    shots = out / '_screenshots'
    base, visits = crawl(out, pages, shots)
    return dict(out=out, base=base, pages=pages, visits=visits, procd=procd, shots=shots)


def test_every_page_built(site):
    built = {p.relative_to(site['out']).as_posix() for p in site['out'].rglob('*.html')}
    assert set(site['pages']) <= built
    assert 'index.html' in site['pages'] and 'losses.html' in site['pages']


def test_pages_load_without_errors(site):
    "No console error, no exception, no failed request and nothing fetched from off the machine (no CDN)"
    bad = {p: probs for p, (info, probs) in site['visits'].items() if probs}
    assert not bad, json.dumps(bad, indent=1)


def test_pages_have_title_sidebar_and_highlighting(site):
    for page, (info, _) in site['visits'].items():
        assert info['title'].strip(), page
        targets = {posixpath.normpath(posixpath.join(posixpath.dirname(page), h)) for h in info['sidebar']}
        assert targets == set(site['pages']), page   # the sidebar lists every page
        code_cells = [c for c in site['procd'][page]['cells'] if c['cell_type'] == 'code'
                      and docs.cell_options(docs._text(c['source']))[1].strip()
                      and not docs._false(docs.cell_options(docs._text(c['source']))[0], 'echo')]
        if code_cells: assert info['highlighted'] > 0, f'{page}: code is not highlighted'


def test_internal_links_resolve(site):
    "Every link to a page of the site reaches an existing page, and its #fragment an element of that page"
    ids = {page: set(info['ids']) for page, (info, _) in site['visits'].items()}
    broken, n = [], 0
    for page, (info, _) in site['visits'].items():
        for url in info['links']:
            if not url.startswith(site['base']): continue
            n += 1
            parts = urlsplit(url)
            path = unquote(parts.path[len(urlsplit(site['base']).path):]) or 'index.html'
            if path.endswith('/'): path += 'index.html'
            if not (site['out'] / path).is_file(): broken.append(f'{page} -> {url} (no such file)')
            elif parts.fragment and path in ids and unquote(parts.fragment) not in ids[path]:
                broken.append(f'{page} -> {url} (no #{parts.fragment})')
    assert n > len(site['pages']), 'suspiciously few internal links'
    assert not broken, '\n'.join(broken)


def test_maths_rendered(site):
    "KaTeX typeset every formula: no raw `$$` left in the text, no KaTeX error, KaTeX's fonts loaded"
    for page, (info, _) in site['visits'].items():
        assert info['mathRendered'], page
        assert '$$' not in info['text'], f'{page}: raw $$ left in the rendered text'
        raw = re.search(r'\$[^$]{0,400}?[\\^_{}][^$]{0,400}?\$', info['text'])   # e.g. a formula broken by a list
        assert not raw, f'{page}: raw TeX left in the rendered text: {raw and raw.group()[:120]!r}'
        assert info['katexErrors'] == 0, page
        md = '\n'.join(docs._text(c['source']) for c in site['procd'][page]['cells'] if c['cell_type'] == 'markdown')
        md = re.sub(r'`[^`\n]*`', '', re.sub(r'^```.*?^```', '', md, flags=re.M | re.S))  # code is not maths
        n_display = len(re.findall(r'\$\$', md)) // 2
        assert info['katexDisplay'] >= n_display, f'{page}: {n_display} display formulas, {info["katexDisplay"]} rendered'
        if '$' in md.replace('$$', ''): assert info['katex'] > 0, page
        if info['katex']: assert info['katexFont'], f'{page}: KaTeX fonts not loaded'
    maths = [p for p in site['pages'] if p == 'maths.html']
    if maths: assert site['visits'][maths[0]][0]['katexDisplay'] >= 3


def test_figures_shown(site):
    "Every image output of an executed notebook is on its page and loads"
    for page, (info, _) in site['visits'].items():
        assert all(i['ok'] for i in info['images']), f'{page}: images not loaded {[i for i in info["images"] if not i["ok"]]}'
        n = sum(1 for c in site['procd'][page]['cells'] if c['cell_type'] == 'code'
                and not docs._false(docs.cell_options(docs._text(c['source']))[0], 'output')
                for o in c.get('outputs', []) if {'image/png', 'image/jpeg', 'image/svg+xml'} & set(o.get('data', {}))
                and 'text/html' not in o.get('data', {}) and 'text/markdown' not in o.get('data', {}))
        assert info['figures'] == n, f'{page}: {n} image outputs, {info["figures"]} figures shown'


def test_screenshots_saved(site):
    import numpy as np
    from PIL import Image
    for stem in ('index', 'losses'):
        for name in (f'{stem}.png', f'{stem}-full.png'):
            p = site['shots'] / name
            assert p.is_file(), p
            im = Image.open(p)
            assert im.size[0] == 1280 and im.size[1] >= 600, (name, im.size)
            assert len(np.unique(np.asarray(im.convert('L').resize((64, 64))))) > 8, f'{name} looks blank'
