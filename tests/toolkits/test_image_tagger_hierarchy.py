"""The shipped ImageNet tag hierarchy: consistent, as the issue describes it, and rebuilt identically from WordNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framelab.toolkits.image_tagger.data import build_imagenet_tags as build
from framelab.toolkits.image_tagger.hierarchy import DATA_FILE, imagenet_hierarchy

WORDNET = Path("/usr/share/wordnet")


def test_the_hierarchy_file_is_small_and_every_tag_is_unique_and_covers_classes():
    data = json.loads(DATA_FILE.read_text())
    assert DATA_FILE.stat().st_size < 300_000
    classes = [line.split()[0] for line in build.CLASSES_FILE.read_text().splitlines()]
    assert [c["wnid"] for c in data["classes"]] == classes
    names = [c["name"] for c in data["classes"]] + [t["name"] for t in data["tags"]]
    assert len(names) == len(set(names))
    covers = [frozenset(t["classes"]) for t in data["tags"]]
    assert all(0 < len(c) <= 500 and max(c) < 1000 for c in covers)
    assert len(covers) == len(set(covers))  # tags covering the same classes are one tag


@pytest.mark.parametrize(("name", "broader"), [
    ("airliner", {"airplane", "aircraft", "vehicle"}),
    ("Egyptian cat", {"cat", "feline", "animal"}),
    ("macaw", {"parrot", "bird", "animal"}),
    ("hotdog", {"food"}),
    ("dragonfly", {"insect", "animal"}),
    ("laptop", {"computer"}),
    ("moped", {"motorcycle", "vehicle"}),
])
def test_fine_classes_roll_up_to_the_broader_tags_people_search_for(name, broader):
    assert broader <= set(imagenet_hierarchy().broader_tags_of(name))


def test_abstract_and_misleading_wordnet_categories_are_not_tags():
    names = set(imagenet_hierarchy().names)
    assert not names & {"entity", "object", "whole", "artifact", "organism", "container", "chordate", "placental"}


def test_the_build_rules_on_a_small_wordnet():
    lines = [
        "1 05 n 01 tabby 0 001 @ 3 n 0000 | x", "2 05 n 01 lion 0 001 @ 5 n 0000 | x",
        "3 05 n 02 cat 0 true_cat 0 001 @ 4 n 0000 | x", "5 05 n 01 cat 1 001 @ 4 n 0000 | x",
        "4 05 n 01 feline 0 001 @ 6 n 0000 | x", "6 05 n 01 animal 0 001 @ 15 n 0000 | x",
        "15 05 n 01 fauna 0 000 | x",
        "7 06 n 01 car 0 001 @ 11 n 0000 | x", "8 06 n 01 truck 0 001 @ 11 n 0000 | x",
        "9 06 n 01 bus 0 001 @ 12 n 0000 | x", "11 06 n 01 motor_vehicle 0 001 @ 12 n 0000 | x",
        "12 06 n 01 vehicle 0 000 | x",
    ]
    synsets = {s.offset: s for s in map(build.parse_synset, lines)}
    counts = {"cat%1:05:00::": 9, "cat%1:05:01::": 1, "animal%1:05:00::": 5, "fauna%1:05:00::": 2,
              "vehicle%1:06:00::": 3}
    out = build.build(["1", "2", "7", "8", "9"], synsets, counts)
    # feline and motor vehicle: never tagged in SemCor; vehicle: above more than half the classes;
    # fauna covers what animal covers: one tag, under the more common name; the second "cat" is
    # told apart by its hypernym.
    assert {t["name"]: t["classes"] for t in out["tags"]} == {"animal": [0, 1], "cat": [0], "cat (feline)": [1]}
    assert [c["name"] for c in out["classes"]] == ["tabby", "lion", "car", "truck", "bus"]


@pytest.mark.skipif(not (WORDNET / "data.noun").exists(), reason="WordNet 3.0 is not installed (apt-get install wordnet-base)")
def test_the_shipped_file_is_what_the_build_script_makes_from_wordnet(tmp_path):
    out = tmp_path / "imagenet_tags.json"
    assert build.main(["--wordnet", str(WORDNET), "--output", str(out)]) == 0
    assert out.read_bytes() == DATA_FILE.read_bytes()
