"""The website builds with warnings as errors and serves what it promises offline."""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


def test_chapters_render_with_local_mathjax(site):
    page = (site / "chapters" / "01_separable_convolution.html").read_text()
    assert re.search(r'src="(\.\./)+_static/\.\./mathjax/tex-chtml\.js', page)
    assert (site / "mathjax" / "tex-chtml.js").exists()
    assert (site / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert "cdn.jsdelivr" not in page and "polyfill.io" not in page


def test_glued_numbers_reach_the_prose(site):
    page = (site / "chapters" / "01_separable_convolution.html").read_text()
    assert '<span class="pasted-text">462,422,016</span>' in page
    assert "Glue ID" not in page  # an unresolved glue key would be reported like this


def test_colab_button_points_at_the_chapter(site):
    page = (site / "chapters" / "01_separable_convolution.html").read_text()
    assert re.search(r"https://colab\.research\.google\.com/github/[^\"]+/blob/main/chapters/"
                     r"01_separable_convolution\.ipynb", page)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(errors="replace"))
    return parser


def test_every_internal_link_resolves(site):
    """A link checker over the built site: every local href/src exists, every #anchor is an id there."""
    pages = [p for p in site.rglob("*.html") if "_static" not in p.parts]
    parsed = {p: _parse(p) for p in pages}
    broken = []
    for page, links in parsed.items():
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if parts.fragment not in ids:
                    broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert len(pages) > 5
    assert not broken, "\n".join(broken[:50])


def test_landing_page_has_the_generated_table(site):
    page = (site / "book" / "index.html").read_text()
    assert "The numbers the book checks" in page
    table = re.search(r'<table class="table checked-numbers">(.*?)</table>', page, re.S)
    assert table, "the table of checked numbers is not an HTML table"
    rows = re.findall(r"<tr><td>(.*?)</td>.*?<td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(yes|no)</td></tr>",
                      table.group(1), re.S)
    assert len(rows) >= 10 and "checkpoint" in table.group(1).lower()
    for name, numbers, agree, known, checked in rows:
        assert int(numbers) == int(agree) + int(known) and checked == "yes", name


def test_a_cells_printed_lines_show_as_one_box(site):
    """A cell that prints line by line, computing between the prints, stores one stream output per
    print; the site merges them (nb_merge_streams), so a table printed row by row reads as one table."""
    for page in sorted((site / "chapters").glob("*.html")):
        for output in page.read_text().split('class="cell_output')[1:]:
            streams = re.findall(r'class="output (stream|stderr)', output.split('class="cell_input')[0])
            assert len(streams) <= 2, f"{page.name}: a cell output split into {len(streams)} boxes"
