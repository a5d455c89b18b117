"""Looking at images: thumbnails in a notebook and the explore page, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.frames.images.display import frame_html
from framelab.frames.images.explore import explore

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SHOTS = Path(tempfile.gettempdir()) / "framelab-explore-screens"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _read(path: str, **kwargs) -> Frame:
    if hasattr(Frame, "read_images"):
        return Frame.read_images(path, **kwargs)
    from framelab.frames import read_images

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


@pytest.fixture(scope="module")
def browser():
    from browser import Browser

    b = Browser()
    yield b
    b.close()


def test_the_grid_filters_searches_sorts_and_groups_in_chromium(two_classes, browser, tmp_path):
    page = explore(two_classes, tmp_path / "grid.html", page_size=200)
    browser.open(page)
    rows = two_classes.select("path", "label").to_polars()
    matching = "Number(document.body.dataset.matching)"
    assert browser.evaluate(matching) == len(rows) and browser.evaluate("document.body.dataset.imagesLoaded") == "120"
    browser.choose("#filter-col", "label")
    browser.choose("#filter-val", "ewer")
    assert browser.evaluate(matching) == (rows["label"] == "ewer").sum()
    browser.click("#clear")
    browser.choose("#search", "image_001")
    assert browser.evaluate(matching) == rows["path"].str.contains("image_001").sum()
    browser.click("#clear")
    browser.choose("#sort-col", "path")
    browser.choose("#sort-dir", "desc")
    first = browser.evaluate("document.querySelector('#grid .card [title=path]').textContent")
    assert first.startswith("path: ") and first.endswith(rows["path"].max()[-30:])  # a long path keeps its end
    browser.choose("#group-col", "label")
    groups = browser.evaluate("Array.from(document.querySelectorAll('#grid .group')).map((g) => [g.dataset.key, Number(g.dataset.size)])")
    assert dict(groups) == dict(rows["label"].value_counts().iter_rows())
    browser.screenshot(SHOTS / "frame_grouped_by_label.png")
    browser.click("[data-tab=columns]")
    shown = browser.evaluate("document.querySelector('.summary[data-column=label]').textContent")
    assert "rows 120" in shown and "ewer" in shown and "brain" in shown
    browser.screenshot(SHOTS / "frame_columns.png")


def test_a_100000_row_frame_is_summarised_whole_and_sampled_in_bounded_driver_memory(browser, tmp_path):
    import time
    import tracemalloc

    import pyarrow as pa

    n = 100_000

    def _tiny_images(table):
        # Defined here so Ray ships it by value: a test module is not importable on the workers.
        """Rows' images made where the rows are (on the cluster): one of four small PNGs, by row number."""
        import io

        import pyarrow as pa
        from PIL import Image

        from framelab.frames.images import image_array

        pngs = []
        for colour in ("red", "green", "blue", "white"):
            buf = io.BytesIO()
            Image.new("RGB", (24, 16), colour).save(buf, "PNG")
            pngs.append(buf.getvalue())
        i = table.column("i").to_numpy()
        k = i % 4
        # The image column built from known sizes: no header is parsed 100,000 times.
        image = image_array([pngs[c] for c in k], ["png"] * len(k), [24] * len(k), [16] * len(k), [3] * len(k))
        return pa.table({"image": image, "i": table.column("i"),
                         "colour": pa.array(np.array(["red", "green", "blue", "white"])[i % 4]),
                         "score": pa.array(np.sin(i.astype(np.float64)))})
    # The rows (and their images) are made on the cluster, block by block: the driver never holds the frame.
    frame = Frame({"i": pa.array(np.arange(n))}).repartition(8).map_batches(_tiny_images)
    tracemalloc.start()
    pool_before = pa.total_allocated_bytes()
    start = time.perf_counter()
    page = explore(frame, tmp_path / "big.html", max_rows=1_000)
    built = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    text = Path(page).read_text()
    assert "1,000 of 100,000 rows in the grid: a uniform random sample" in text
    opened = browser.open(page)
    summaries = {s: browser.evaluate(f"DATA.summaries.find((x) => x.name === '{s}')") for s in ("i", "colour", "score")}
    assert summaries["i"]["rows"] == n and summaries["i"]["max"] == n - 1 and summaries["i"]["min"] == 0
    assert summaries["colour"]["top"] == [["blue", 25_000], ["green", 25_000], ["red", 25_000], ["white", 25_000]]
    assert browser.evaluate("ROWS.length") == 1000 and browser.evaluate("document.body.dataset.imagesLoaded") == "48"
    browser.screenshot(SHOTS / "frame_100000_rows.png")
    print(f"\n100,000 rows: page built in {built:.1f}s, driver peak {peak / 2**20:.1f} MiB (Python) "
          f"+ {(pa.total_allocated_bytes() - pool_before) / 2**20:.1f} MiB (Arrow, still held), "
          f"{len(text) / 2**20:.1f} MiB page, opened in {opened:.2f}s")
    # The frame's images are about 100,000 x 80 bytes and its rows ~4 MB more: the driver holds a sample's worth.
    assert peak < 64 * 2**20
    assert opened < 10  # measured about 0.3 s; the issue asks < 2 s, left generous for a loaded machine


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
