"""The website as a reader sees it, in a real browser (Playwright driving Debian's Chromium).

Chromium is installed with apt-get when missing; only if that is impossible are
these tests skipped, with the reason. Screenshots go to ``artifacts/``.
"""

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))
PAGES = ["book/index.html", "book/how_to_use.html", "book/notation.html", "book/counting_contract.html",
         "book/instructors.html", "book/assignments.html", "book/bibliography.html"] + \
    [f"chapters/{c}.html" for c in CHAPTERS]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=900)
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed and could not be installed with apt-get: browser tests skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with _on_every_cpu():  # the browser's processes, not only the test worker's one CPU
        playwright = sync_api.sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@contextlib.contextmanager
def _on_every_cpu():
    """Processes started inside may run on every CPU: conftest pins each test worker to one of its own
    and leaves the full set in SEPCONV_TEST_ALL_CPUS."""
    everywhere = os.environ.get("SEPCONV_TEST_ALL_CPUS")
    if not everywhere:
        yield
        return
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(c) for c in everywhere.split(",")})
    try:
        yield
    finally:
        os.sched_setaffinity(0, pinned)


def _open(browser, url, width=1280):
    """Open ``url`` with every request outside localhost refused; return (page, problems)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(120_000)  # a loaded 2-core CI machine can take long to lay out a chapter
    problems = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
               else route.abort())
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, problems


@pytest.fixture(scope="module")
def pages(browser, server):
    """``get(path, width=1280) -> (page, problems)``: each page opened once per window width, its math
    typeset, and shared by the tests below (loading a page is most of a browser test's time)."""
    opened = {}

    def get(path, width=1280):
        if (path, width) not in opened:
            for key in [key for key in opened if key[1] != 1280]:  # only the wide pages are shared by tests
                opened.pop(key)[0].close()
            page, problems = _open(browser, f"{server}/{path}", width=width)
            if page.locator("span.math, div.math").count() > 0:
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
                page.evaluate("() => MathJax.startup.promise")
            opened[path, width] = page, problems
        return opened[path, width]

    yield get
    for page, _ in opened.values():
        page.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_clean_with_math_and_figures(pages, path):
    page, problems = pages(path)
    if page.locator("span.math, div.math").count() > 0:
        assert page.locator("mjx-container").count() > 0, "MathJax produced no output"
        raw = page.evaluate("""() => [...document.querySelectorAll('span.math, div.math')]
                                .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent)""")
        assert not raw, f"math left as raw TeX: {raw[:3]}"
    broken = page.evaluate("""() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                               .map(i => i.src)""")
    assert not broken, f"images that did not load: {broken}"
    assert not problems, problems


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_link_points_to_the_chapter_notebook(pages, chapter):
    page, _ = pages(f"chapters/{chapter}.html")
    hrefs = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
    assert hrefs, "no Colab launch link"
    assert all(h.endswith(f"/blob/main/chapters/{chapter}.ipynb") for h in hrefs), hrefs


def test_search_finds_the_chapters(browser, server):
    page, problems = _open(browser, f"{server}/search.html?q=depthwise")
    page.wait_for_selector("#search-results ul.search li", timeout=30000)
    results = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    assert any("01_separable_convolution" in r for r in results), results
    assert not problems, problems
    page.close()


def test_screenshots_are_saved(pages):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, path in (("landing", "book/index.html"), ("chapter", "chapters/01_separable_convolution.html")):
        page, _ = pages(path)
        target = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(target), full_page=False)
        assert target.stat().st_size > 10_000


#: Chapters whose content is tables and text only.
WITHOUT_FIGURES = {"02_counting"}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_figures_have_alt_text_and_are_legible(pages, chapter):
    """Every image says what it shows (not a file name), and is shown at no less than 55% of its
    natural width (a figure squeezed further is too small to read)."""
    page, _ = pages(f"chapters/{chapter}.html")
    images = page.evaluate("""() => [...document.querySelectorAll('.cell_output img, article figure img')].map(i => ({
        src: i.src, alt: i.getAttribute('alt') || '', shown: i.getBoundingClientRect().width,
        natural: i.naturalWidth / (window.devicePixelRatio || 1)}))""")
    assert bool(images) == (chapter not in WITHOUT_FIGURES), f"{len(images)} figures"
    for image in images:
        alt = image["alt"].strip()
        assert len(alt) >= 20, f"{image['src']}: alt text {alt!r}"
        assert not alt.lower().endswith((".png", ".svg", ".jpg")) and "/" not in alt.split()[0], alt
        assert image["shown"] >= 0.55 * min(image["natural"], 800), image


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("path", PAGES)
def test_no_horizontal_scrolling_outside_code(pages, path, width):
    """On a phone (390 px) and a laptop (1280 px) the page never scrolls sideways; only code blocks,
    outputs and tables may scroll inside their own box."""
    page, _ = pages(path, width)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the page is {overflow} px wider than the {width} px window"


def test_exercises_are_numbered_per_chapter(pages):
    numbers = {}
    for chapter in ("01_separable_convolution", "09_deployment"):
        page, _ = pages(f"chapters/{chapter}.html")
        numbers[chapter] = page.eval_on_selector_all(".exercise .admonition-title, .exercise p.admonition-title",
                                                     "els => els.map(e => e.textContent)")
    first, last = numbers["01_separable_convolution"], numbers["09_deployment"]
    assert len(first) >= 5 and len(last) >= 5, numbers
    assert first[0].startswith("Exercise 1.1") and last[0].startswith("Exercise 9.1"), numbers


def test_landing_page_shows_the_checked_numbers_as_a_table(pages):
    page, _ = pages("book/index.html")
    rows = page.locator("main table tr").count()
    assert rows >= 5, f"the landing page's table of checked numbers has {rows} rows"
