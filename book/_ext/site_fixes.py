"""Small fixes to the generated website, found by the browser tests.

jupyter-book 1.x registers sphinx-thebe's configuration script twice, which
makes every page throw "Identifier 'THEBE_JS_URL' has already been declared".
This extension keeps only the first copy of each script on a page (an inline
script has no file name: ``None`` and ``''`` are the same).

It also adds ``static/site_fixes.css``: on a phone, wide tables and long display
equations scroll inside their own box, and long inline code wraps, instead of
widening the page.
"""

from pathlib import Path


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        key = (getattr(script, "filename", str(script)) or "", attributes.get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def _add_static(app, config):
    config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("config-inited", _add_static)
    app.add_css_file("site_fixes.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
