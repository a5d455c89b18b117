"""Models' explore pages driven in headless Chromium: each view must show what the model itself says.

One browser and one set of deep features serve the whole module (24 Caltech photos and two
lossy copies); every screenshot goes to SHOTS, to be looked at before a change is merged.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from browser import Browser
from caltech_folders import copy_caltech
from PIL import Image

from framelab.frames import Frame, read_images, vectors_from_numpy
from framelab.toolkits import (
    deep_features,
    image_classifier,
    image_similarity,
    image_tagger,
    kmeans,
)

SHOTS = Path(tempfile.gettempdir()) / "framelab-explore-screens"
CLASSES = ["ewer", "sunflower", "Motorbikes"]
# The row ids (in the page) of each shown card, read from the cards' own row_id line.
CARD_ROWS = """(selector) => Array.from(document.querySelectorAll(selector)).map(
  (c) => Number(c.querySelector('[title="row_id"]').textContent.split(": ")[1]))"""


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """24 photos of three classes plus two JPEG-quality-30 copies (near-duplicates), with deep features."""
    root = tmp_path_factory.mktemp("photos")
    copy_caltech(root, CLASSES, 8)
    for name in CLASSES[:2]:
        Image.open(root / name / "image_0001.jpg").convert("RGB").save(root / name / "image_0001_copy.jpg", quality=30)
    return deep_features.extract(read_images(str(root), label_from="folder")).materialize()


def _page_rows(browser: Browser, selector: str = "#grid .card") -> list[int]:
    return browser.call(CARD_ROWS, selector)


def test_a_confusion_cell_opens_exactly_its_images_and_the_map_selects_rows(featured, browser, tmp_path):
    model = image_classifier.create(featured, "label", seed=0, verbose=False)
    # Three photos given a wrong label: the model (trained on the right ones) disagrees with exactly those.
    labels = featured.select("label").to_arrow().column(0).to_pylist()
    for i, wrong in ((0, "sunflower"), (1, "sunflower"), (9, "Motorbikes")):
        labels[i] = wrong
    table = featured.to_arrow()
    evaluated = Frame(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)))
    predicted = model.predict(evaluated).to_pylist()
    page = model.explore(evaluated, str(tmp_path / "classifier.html"))
    browser.open(page)
    mistakes = [i for i, (t, p) in enumerate(zip(labels, predicted)) if t != p]
    assert mistakes and set(_page_rows(browser)[: len(mistakes)]) == set(mistakes)  # misclassified first
    browser.click("[data-tab=confusion]")
    browser.screenshot(SHOTS / "classifier_confusion.png")
    counts = model.evaluate(evaluated)["confusion_matrix"].to_pydict()
    for truth, pred, n in zip(counts["target_label"], counts["predicted_label"], counts["count"]):
        shown = browser.evaluate(f"document.querySelector('td[data-truth=\"{truth}\"][data-predicted=\"{pred}\"]').textContent")
        assert int(shown) == n
    truth, pred = labels[0], predicted[0]
    browser.click(f'td[data-truth="{truth}"][data-predicted="{pred}"]')
    browser.wait_for("document.body.dataset.tab === 'rows'", "the grid to show the cell's images")
    expected = [i for i, (t, p) in enumerate(zip(labels, predicted)) if (t, p) == (truth, pred)]
    assert sorted(_page_rows(browser)) == expected
    browser.screenshot(SHOTS / "classifier_cell_images.png")
    browser.click("[data-tab=confusion]")
    browser.click("#misclassified")
    assert sorted(_page_rows(browser)) == mistakes

    # The map: every row drawn; hovering a point shows its thumbnail; a box over all points selects them all.
    browser.click("[data-tab=map]")
    assert int(browser.evaluate("document.body.dataset.mapPoints")) == len(labels)
    box = browser.call("() => { const b = document.getElementById('map').getBoundingClientRect(); "
                       "return [b.left, b.top, b.right, b.bottom]; }")
    first = browser.call("() => { const b = document.getElementById('map').getBoundingClientRect(); "
                         "return [mapPoints[0].x + b.left, mapPoints[0].y + b.top]; }")
    browser.mouse("mouseMoved", *first)
    browser.wait_for("document.getElementById('hover').style.display === 'block'", "the hover thumbnail")
    assert browser.evaluate("document.querySelector('#hover img') !== null")
    browser.screenshot(SHOTS / "classifier_map.png")
    browser.mouse("mousePressed", box[0] + 1, box[1] + 1, buttons=1)
    browser.mouse("mouseMoved", box[2] - 1, box[3] - 1, buttons=1)
    browser.mouse("mouseReleased", box[2] - 1, box[3] - 1)
    browser.wait_for("document.body.dataset.tab === 'rows'", "the grid to show the map's selection")
    assert int(browser.evaluate("document.body.dataset.matching")) == len(labels)


def test_clusters_are_sections_with_the_sizes_of_cluster_info_nearest_first(featured, browser, tmp_path):
    model = kmeans.create(featured, 3, seed=0, verbose=False)
    page = model.explore(featured, str(tmp_path / "kmeans.html"), per_cluster=4)
    browser.open(page)
    groups = browser.evaluate("Array.from(document.querySelectorAll('#grid .group')).map("
                              "(g) => [Number(g.dataset.key), Number(g.dataset.size), Number(g.dataset.inPage)])")
    info = model.cluster_info.to_pydict()
    assert {k: n for k, n, _ in groups} == dict(zip(info["cluster_id"], info["size"]))
    assert all(shown == min(4, n) for _, n, shown in groups)
    assignments = model.cluster_id.to_polars()
    rows = _page_rows(browser)
    expected = (assignments.sort(["cluster_id", "distance"]).group_by("cluster_id", maintain_order=True)
                .head(4)["row_id"].to_list())
    assert rows == expected  # each section nearest the centre first
    browser.screenshot(SHOTS / "kmeans_clusters.png")
    # A numeric range over the page's rows: distance at most the median distance shown.
    cut = float(np.median(assignments.filter(pl.col("row_id").is_in(rows))["distance"].to_numpy()))
    browser.choose("#range-col", "distance")
    browser.choose("#range-max", repr(cut))
    inside = assignments.filter(pl.col("row_id").is_in(rows) & (pl.col("distance") <= cut))
    assert int(browser.evaluate("document.body.dataset.matching")) == len(inside)


def test_clicking_an_image_shows_the_neighbours_query_finds_and_copies_group_together(featured, browser, tmp_path):
    model = image_similarity.create(featured, verbose=False)
    page = model.explore(featured, str(tmp_path / "similarity.html"), k=3)
    browser.open(page)
    browser.click('#grid .card[data-id="4"] img')
    browser.wait_for("!document.getElementById('neighbours').hidden", "the neighbours panel")
    query_row = browser.evaluate("Number(document.getElementById('neighbours').dataset.query)")
    shown = browser.evaluate("Array.from(document.querySelectorAll('#neighbour-list .card')).map("
                             "(c) => [Number(c.dataset.key), Number(c.dataset.distance)])")
    found = model.query(featured.add_row_number("row_id").filter(pl.col("row_id") == query_row), k=4).to_pydict()
    expected = [(r, d) for r, d in zip(found["reference_label"], found["distance"]) if r != query_row][:3]
    assert [r for r, _ in shown] == [r for r, _ in expected]
    np.testing.assert_allclose([d for _, d in shown], [d for _, d in expected], atol=1e-6)
    browser.screenshot(SHOTS / "similarity_neighbours.png")
    browser.click("#close-neighbours")
    browser.click("#duplicates")
    all_paths = featured.select("path").to_pydict()["path"]
    paths = [Path(all_paths[i]).name for i in _page_rows(browser)]
    groups = browser.evaluate("Array.from(document.querySelectorAll('#grid .group')).map((g) => Number(g.dataset.size))")
    # Each copy lands in a group with its original (at least the two of them), and only such groups are shown.
    assert groups and all(size >= 2 for size in groups)
    assert sum(groups) == len(paths) and sorted(paths) == sorted(["image_0001.jpg", "image_0001_copy.jpg"] * 2)
    browser.screenshot(SHOTS / "similarity_near_duplicates.png")


def test_tag_facets_count_over_all_rows_and_a_tag_filter_with_a_minimum_score(coral, browser, tmp_path):
    tagger = image_tagger.create()
    photos = read_images(str(coral))
    n = photos.num_rows()
    # Logits that make the network sure of one class per photo (no network runs: the tagger reads them).
    logits = np.zeros((n, 1000), np.float32)
    for i, (cls, strength) in enumerate(zip([88, 88, 88, 1, 1, 934, 88, 1][:n], [12, 4, 12, 12, 3, 12, 2, 12][:n])):
        logits[i, cls] = strength
    field = tagger.extractor.output_field("imagenet_logits")
    table = photos.to_arrow().append_column(field, pa.chunked_array([vectors_from_numpy(logits)]))
    frame = Frame(table)
    page = tagger.explore(frame, str(tmp_path / "tags.html"), k=None)
    browser.open(page)
    tagged = tagger.tag(frame, k=None).select("tags").to_pydict()["tags"]
    facets = browser.evaluate("Array.from(document.querySelectorAll('#tag option')).slice(1).map((o) => o.textContent)")
    counted: dict[str, int] = {}
    for row in tagged:
        for t in row or []:
            counted[t["tag"]] = counted.get(t["tag"], 0) + 1
    assert {f.rsplit(" (", 1)[0]: int(f.rsplit(" (", 1)[1][:-1]) for f in facets} == counted
    browser.choose("#tag", "bird")
    browser.choose("#tag-min", "0.9")
    expected = sum(any(t["tag"] == "bird" and t["score"] >= 0.9 for t in row or []) for row in tagged)
    assert int(browser.evaluate("document.body.dataset.matching")) == expected
    assert 0 < expected < sum(any(t["tag"] == "bird" for t in row or []) for row in tagged)
    browser.screenshot(SHOTS / "tagger_filtered.png")
    browser.click("[data-tab=columns]")
    browser.screenshot(SHOTS / "tagger_columns.png")
