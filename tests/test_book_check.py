"""The book check on hand-made pages: a table cell showing a bare NaN is reported."""

import pytest

from xmd_core.book_check import browser_available, check_book


@pytest.mark.slow
def test_a_bare_nan_cell_is_reported(tmp_path):
    why = browser_available()
    if why:
        pytest.skip(why)
    (tmp_path / "clean.html").write_text("<html><body><table><tr><td>61.5 [58.9, 64.0]</td><td>not in the paper</td></tr></table></body></html>")
    (tmp_path / "missing.html").write_text("<html><body><table><tr><td>61.5</td><td>NaN</td><td> nan </td></tr></table></body></html>")
    problems, pages = check_book(tmp_path)
    assert pages == 2
    assert [(p.page, p.what) for p in problems] == [("missing.html", "2 table cell(s) show a bare NaN")]
