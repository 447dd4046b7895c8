"""The built documentation site, opened in a real headless browser.

Serves ``docs/_build/html`` (built by ``scripts/docs.sh``) on a loopback port and opens every
page in Debian's chromium through Selenium and chromium-driver. Checks that every page loads
without console errors, that the browser fetches nothing from outside the site (no CDN
fonts, scripts or math), that every image loads and that every internal link points to an
existing page and anchor. Skips, naming what is missing, without the built site, chromium,
chromium-driver or selenium; CI sets ``FLAMO_REQUIRE_DOCS_TEST=1``, which turns those skips
into failures, so the test cannot silently stop running there.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "docs" / "_build" / "html"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    if not (SITE / "index.html").is_file():
        return f"the docs site is not built ({SITE}); run scripts/docs.sh"
    if CHROMIUM is None or CHROMEDRIVER is None:
        return ("needs Debian's chromium and chromium-driver "
                "(apt-get install --no-install-recommends chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[docs]')"
    return None


@pytest.fixture(scope="module")
def site():
    """(base URL, webdriver) of the site served on 127.0.0.1."""
    missing = _missing()
    if missing:
        if os.environ.get("FLAMO_REQUIRE_DOCS_TEST"):
            pytest.fail(f"FLAMO_REQUIRE_DOCS_TEST is set but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path: Selenium Manager never tries to download a browser or driver.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", driver
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def _pages() -> list[Path]:
    """Every page Sphinx wrote (not the theme's template fragments under _static/)."""
    return sorted(p for p in SITE.rglob("*.html") if p.relative_to(SITE).parts[0] != "_static")


_LOCAL = ("data:", "blob:", "about:", "chrome:", "devtools:")


def _visit(base: str, driver, page: Path) -> list[str]:
    """Problems found on one page (empty when it is fine)."""
    url = base + page.relative_to(SITE).as_posix()
    driver.get_log("browser")  # drop what earlier pages left
    driver.get_log("performance")
    driver.get(url)
    problems = []
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(f"console error: {entry['message']}")
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            requested = params["request"]["url"]
            if not requested.startswith(base) and not requested.startswith(_LOCAL):
                problems.append(f"fetches from outside the site: {requested}")
        elif message["method"] == "Network.responseReceived":
            response = params["response"]
            if response["url"].startswith(base) and response["status"] >= 400:
                problems.append(f"HTTP {response['status']} for {response['url']}")
        elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed to load a resource: {params.get('errorText')}")
    broken = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    problems += [f"image does not load: {src}" for src in broken]
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for href in hrefs:
        if not href.startswith(base):
            continue
        target, fragment = urldefrag(href)
        rel = unquote(urlsplit(target).path).lstrip("/")
        path = SITE / rel
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            problems.append(f"broken link: {href}")
        elif fragment and path.suffix == ".html" and unquote(fragment) not in _anchors(path):
            problems.append(f"broken anchor: {href}")
    return problems


def test_every_page_loads_cleanly(site):
    base, driver = site
    pages = _pages()
    assert len(pages) > 20, f"only {len(pages)} pages: is the API reference missing?"
    problems = {}
    for page in pages:
        found = _visit(base, driver, page)
        if found:
            problems[page.relative_to(SITE).as_posix()] = sorted(set(found))
    assert not problems, json.dumps(problems, indent=1)


def test_gallery_shows_every_committed_figure(site):
    base, driver = site
    expected = sorted(p.name for folder in (REPO / "results").glob("*/meta.json")
                      for p in folder.parent.glob("*.png"))
    driver.get(base + "_generated/gallery.html")
    shown = driver.execute_script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
        ".map(i => i.getAttribute('src').split('/').pop())")
    # Sphinx copies each figure under its own file name (a suffix only on a name clash).
    shown = sorted(re.sub(r"\d*(\.png)$", r"\1", name) for name in shown)
    assert sorted(re.sub(r"\d*(\.png)$", r"\1", n) for n in expected) == shown
    text = driver.find_element("tag name", "body").text
    for folder in (REPO / "results").glob("*/headline.json"):
        for key in json.loads(folder.read_text()):
            assert key in text, f"headline number {key!r} of {folder.parent.name} not shown"


def test_search_finds_the_grid(site):
    from selenium.webdriver.support.ui import WebDriverWait

    base, driver = site
    driver.get(base + "search.html?q=Grid")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.querySelectorAll('#search-results li a').length > 0"))
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results li a')).map(a => a.href)")
    assert any("flamo.Grid" in href for href in links), links


def test_no_remote_resources_in_the_built_files():
    """What the browser would fetch, read from the files (also resources no page here
    happened to trigger): no http(s) URL in a src, a stylesheet/script/font link or a CSS
    url()."""
    if not (SITE / "index.html").is_file():
        pytest.skip(f"the docs site is not built ({SITE}); run scripts/docs.sh")
    remote = re.compile(
        r"""(?:\bsrc\s*=\s*["']|<link\b[^>]*\bhref\s*=\s*["']|url\(\s*["']?|@import\s+["'])"""
        r"""(?:https?:)?//""", re.I)
    offenders = []
    for path in sorted(SITE.rglob("*")):
        if path.suffix in (".html", ".css", ".js") and path.is_file():
            for match in remote.finditer(path.read_text(encoding="utf-8", errors="replace")):
                offenders.append(f"{path.relative_to(SITE)}: {match.group(0)}")
    assert not offenders, "\n".join(offenders[:20])
