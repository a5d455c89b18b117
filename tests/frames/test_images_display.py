"""Looking at images: thumbnails in a notebook and the explore page, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.frames.images.display import frame_html
from framelab.frames.images.explore import explore

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _read(path: str, **kwargs) -> Frame:
    if hasattr(Frame, "read_images"):
        return Frame.read_images(path, **kwargs)
    from framelab.frames.images.read import read_images

    return read_images(path, **kwargs)


@pytest.fixture(scope="module")
def two_classes(caltech: Path) -> Frame:
    return _read([str(caltech / "ewer"), str(caltech / "brain")], label_from="folder")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium); cannot check the page renders")


def test_notebook_view_shows_image_columns_as_thumbnails(two_classes):
    page = frame_html(two_classes)
    assert page.count("<img ") == 10 and page.count('src="data:image/jpeg;base64,') == 10
    assert "label" in page and ("ewer" in page or "brain" in page)
    assert two_classes._repr_html_().count("<img ") == 10  # what a notebook shows


def test_explore_refuses_a_frame_without_images():
    with pytest.raises(InputError, match="no.*image|none"):
        explore(Frame({"x": [1, 2]}))


def test_explore_page_renders_its_thumbnails_in_headless_chromium(two_classes, tmp_path):
    chromium = _chromium()
    page = explore(two_classes, tmp_path / "explore.html", page_size=24)
    assert page.endswith("explore.html")
    text = Path(page).read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing fetched
    profile = tempfile.mkdtemp(prefix="framelab-chromium-")
    try:
        base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
        dom = subprocess.run(
            [*base, "--dump-dom", f"file://{page}"], capture_output=True, text=True, timeout=120
        ).stdout
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:500]
        loaded = int(re.search(r'data-images-loaded="(\d+)"', body.group(0)).group(1))
        total = int(re.search(r'data-images-total="(\d+)"', body.group(0)).group(1))
        assert total == 24 and loaded == total  # every thumbnail decoded (naturalWidth > 0)
        assert "page 1 of 5" in dom  # 120 rows, 24 a page
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "images_explore.png"
        subprocess.run(
            [*base, "--window-size=1280,900", f"--screenshot={shot}", f"file://{page}"],
            capture_output=True, timeout=120,
        )
        assert shot.is_file() and shot.stat().st_size > 10_000
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_long_paths_show_their_file_name_in_repr_html_and_the_explore_page(caltech, tmp_path, monkeypatch):
    folder = tmp_path / "a_corpus_folder_with_a_rather_long_name" / "hymenoptera_train_2024" / "ewers"
    folder.mkdir(parents=True)
    shutil.copy(caltech / "ewer" / "image_0001.jpg", folder / "museum_0001.jpg")
    photos = _read(str(folder))
    full = photos.to_pydict()["path"][0]
    assert len(full) > 60
    assert "…/ewers/museum_0001.jpg" in repr(photos)  # the text view keeps the end
    assert "…/ewers/museum_0001.jpg" in repr(Frame({"path": [full]}))
    hover = f'<span title="{full}">…'
    for page in (photos._repr_html_(), Frame({"path": [full]})._repr_html_()):
        assert hover in page and "museum_0001.jpg</span>" in page  # whole path on hover
    monkeypatch.setenv("FRAMELAB_EXPLORE_DIR", str(tmp_path / "pages"))
    page = photos.explore()
    assert repr(page) == str(page) and page.startswith(str(tmp_path / "pages" / "framelab-explore-"))
    text = Path(page).read_text()
    assert f'<span title=\\"{full}\\">' in text and "museum_0001.jpg<\\/span>" in text  # the page's data (JSON)
    assert '<iframe srcdoc="' in page._repr_html_() and str(page) in page._repr_html_()
