"""Two fixes of the Jupyter Book 1.x stack for a page without console errors (checked in a real
browser by `xmd_core.book_check`):

- sphinx-thebe and sphinx-togglebutton add their inline configuration scripts from an
  `env-before-read-docs` handler, which runs twice per build here, so every page declared
  `const THEBE_JS_URL` twice (a SyntaxError in the console): repeated script entries are dropped;
- pydata-sphinx-theme logs "Got invalid theme mode" when `default_mode` is empty and the
  reader's browser has stored none: the page context's mode defaults to "auto".
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    # the two copies differ only in an absent file name: None in one, "" in the other
    attributes = tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items()))
    return (getattr(script, "filename", None) or "", attributes)


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # in place: it is the builder's own list, to which later handlers (myst-nb's widget script) add
    context["script_files"][:] = kept


def default_theme_mode(app, pagename, templatename, context, doctree) -> None:
    # pydata-sphinx-theme reads `default_mode` from the page context (`html_context`)
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    app.connect("html-page-context", default_theme_mode)
    # early: `html-page-context` stops at the first handler that returns a template name
    app.connect("html-page-context", drop_repeated_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
