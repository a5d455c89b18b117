"""Where ``explore()`` writes its page, and the small object it returns: the page's path, shown inline in a notebook.

With no path given, pages go to the folder named by ``FRAMELAB_EXPLORE_DIR``
(a session sets it once, e.g. ``os.environ["FRAMELAB_EXPLORE_DIR"] = "pages"``),
else to the system's temporary folder; either way the returned
:class:`ExplorePage` says where the page went.

Example:
    >>> from framelab.frames.images.page import ExplorePage
    >>> page = ExplorePage("/tmp/cats.html")
    >>> page, page.endswith(".html")
    (/tmp/cats.html, True)
"""

from __future__ import annotations

import html
import os
import tempfile

from framelab.frames.display import PlainText
from framelab.frames.errors import InputError

EXPLORE_DIR_ENV = "FRAMELAB_EXPLORE_DIR"


class ExplorePage(PlainText):
    """The path of a written explore page: its repr is the path, and a notebook shows the page inline.

    It is a ``str``, so it opens, joins and compares as the path does.

    Example:
        >>> from framelab.frames.images.page import ExplorePage
        >>> repr(ExplorePage("/tmp/cats.html"))
        '/tmp/cats.html'
    """

    def _repr_html_(self) -> str:
        # srcdoc, not src: a notebook's server cannot serve a file outside its own folder.
        with open(self, encoding="utf-8") as f:
            page = f.read()
        name = html.escape(str(self))
        return (
            f'<div><small>explore page: <a href="file://{name}" target="_blank">{name}</a></small>'
            f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:600px;border:1px solid #ccc">'
            "</iframe></div>"
        )


def page_path(path: str | os.PathLike | None) -> ExplorePage:
    """The file a page is written to: ``path`` as given, else a new file in the session's explore folder.

    Example:
        >>> import os
        >>> from framelab.frames.images.page import page_path
        >>> page_path("cats.html")
        cats.html
    """
    if path is not None:
        return ExplorePage(os.fspath(path))
    folder = os.environ.get(EXPLORE_DIR_ENV) or tempfile.gettempdir()
    try:
        os.makedirs(folder, exist_ok=True)
        fd, chosen = tempfile.mkstemp(prefix="framelab-explore-", suffix=".html", dir=folder)
    except OSError as err:
        raise InputError(
            f"cannot write an explore page in {folder!r} ({err.strerror}); set {EXPLORE_DIR_ENV} to a writable "
            "folder or pass explore(path=...)"
        ) from None
    os.close(fd)
    return ExplorePage(os.path.abspath(chosen))
