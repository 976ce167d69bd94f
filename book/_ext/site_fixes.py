"""Small fixes to the generated website, found by the browser tests.

jupyter-book 1.x registers sphinx-thebe's configuration script twice, which
makes every page throw "Identifier 'THEBE_JS_URL' has already been declared".
This extension keeps only the first copy of each script on a page (an inline
script has no file name: ``None`` and ``''`` are the same).
"""


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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
