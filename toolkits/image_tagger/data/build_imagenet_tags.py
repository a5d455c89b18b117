"""Build ``imagenet_tags.json``: the 1,000 ImageNet classes and the broader WordNet tags above them.

Run it once, where WordNet 3.0 is installed; framelab itself never needs WordNet::

    apt-get install -y --no-install-recommends wordnet-base   # Debian/Ubuntu: /usr/share/wordnet
    python toolkits/image_tagger/data/build_imagenet_tags.py [--wordnet /usr/share/wordnet]

It reads ``LOC_synset_mapping.txt`` (each class's WordNet 3.0 noun synset, in the model's output
order) and, from WordNet, ``data.noun`` (the hypernym, "is a", links) and ``cntlist.rev`` (how often
each word sense is tagged in the SemCor corpus: how common a word is in that sense). It writes
``imagenet_tags.json`` beside itself. The rules, in order:

1. Every class is a tag, named by its synset's head word (WordNet's first word, the name ImageNet
   uses): ``n02124075`` is "Egyptian cat".
2. Every hypernym ancestor of a class is a candidate broader tag; it covers the classes below it, and
   its score is the sum of their probabilities.
3. A candidate covering more than half the classes says nothing (entity, object, artifact): dropped.
4. A candidate whose head word SemCor never tags in that sense is a technical word (chordate,
   placental, odonate): dropped, except the everyday words in ``EVERYDAY``.
5. WordNet's structural categories in ``ABSTRACT`` are dropped: "container" would tag every car,
   "game" every grouse, "organism" and "vertebrate" say what "animal" says.
6. Candidates covering the same classes are one tag, shown once under its most common name (the head
   word SemCor tags most often): "aircraft", not "heavier-than-air craft".
7. Names are unique: where two tags share one, the sense SemCor tags most keeps it; another takes
   the next most common name of its group if that is free ("flower" for the plants, as the factory
   kept "plant"), or else adds its hypernym: "crane" the bird, "crane (lifting device)" the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES_FILE = HERE / "LOC_synset_mapping.txt"
OUTPUT_FILE = HERE / "imagenet_tags.json"
FORMAT = "framelab.imagenet_tags"
FORMAT_VERSION = 1
MAX_SHARE = 0.5

# Everyday words for groups of classes that SemCor happens never to tag (rule 4).
EVERYDAY = {
    "02120997": "feline", "02469914": "primate", "02329401": "rodent", "01874434": "marsupial",
    "02062744": "whale", "02068974": "dolphin", "02076196": "seal", "01877134": "kangaroo",
    "02437136": "camel", "02496913": "lemur", "02099029": "retriever", "02113335": "poodle",
    "02108672": "bulldog", "02108254": "mastiff", "02090827": "greyhound", "02112826": "corgi",
    "02096756": "schnauzer", "02055803": "penguin", "02008041": "heron", "02002075": "stork",
    "01529672": "finch", "01662784": "turtle", "01627424": "amphibian", "01697178": "crocodile",
    "01747885": "cobra", "01699831": "dinosaur", "02274259": "butterfly", "01974773": "crustacean",
    "01982650": "lobster", "01940736": "mollusk", "12992868": "fungus", "03790512": "motorcycle",
    "04520170": "van", "03684823": "locomotive", "04128499": "sailboat", "04552696": "warship",
    "04235291": "sled", "04264914": "spacecraft", "03380867": "footwear", "03513137": "helmet",
    "03441112": "glove", "03597469": "jewelry", "04004475": "printer", "04403638": "telescope",
    "02729837": "appliance", "03797390": "mug", "03153375": "cutlery", "04381994": "tableware",
    "07697100": "hamburger",
}

# Structural WordNet categories that would mislead or repeat a better tag (rule 5).
ABSTRACT = {
    "00004258": "living thing", "00004475": "organism", "01471682": "vertebrate",
    "01317541": "domestic animal", "02152991": "game", "03094503": "container",
    "03076708": "commodity", "00020827": "matter", "15046900": "solid", "14939900": "fluid",
    "14580897": "material", "00022903": "article", "03892891": "part", "13809207": "part",
    "04377057": "system", "00033020": "communication", "00027167": "location", "00027807": "shape",
    "02735688": "area", "04599396": "work", "09816771": "associate", "09349797": "mechanism",
    "03091374": "connection", "04359589": "support", "04360501": "support",
    "00031921": "relation", "08620061": "point", "03247620": "drug",
}


@dataclass
class Synset:
    """A WordNet noun synset: its words (lemma, lex_id), lexicographer file and hypernyms."""

    offset: str
    lex_file: int
    words: list[tuple[str, int]]
    hypernyms: list[str] = field(default_factory=list)

    @property
    def head(self) -> str:
        """The synset's first word, as a tag name ("hot_dog" -> "hot dog").

        Example:
            >>> Synset("07697537", 13, [("hotdog", 0), ("hot_dog", 0)]).head
            'hotdog'
        """
        return self.words[0][0].replace("_", " ")

    def sense_key(self, index: int = 0) -> str:
        """WordNet's sense key of one of its words (how cntlist.rev names it).

        Example:
            >>> Synset("02121620", 5, [("cat", 0), ("true_cat", 0)]).sense_key(1)
            'true_cat%1:05:00::'
        """
        lemma, lex_id = self.words[index]
        return f"{lemma.lower()}%1:{self.lex_file:02d}:{lex_id:02d}::"


def parse_synset(line: str) -> Synset:
    """One line of WordNet's ``data.noun``.

    Example:
        >>> s = parse_synset("02121620 05 n 02 cat 0 true_cat 0 001 @ 02120997 n 0000 | feline mammal")
        >>> s.head, s.hypernyms, s.sense_key()
        ('cat', ['02120997'], 'cat%1:05:00::')
    """
    fields = line.split(" | ", 1)[0].split()
    offset, lex_file, count = fields[0], int(fields[1]), int(fields[3], 16)
    words = [(fields[4 + 2 * i], int(fields[5 + 2 * i], 16)) for i in range(count)]
    i = 4 + 2 * count
    synset = Synset(offset, lex_file, words)
    for _ in range(int(fields[i])):
        symbol, target, pos = fields[i + 1], fields[i + 2], fields[i + 3]
        i += 4
        if symbol in ("@", "@i") and pos == "n":  # hypernym, instance hypernym
            synset.hypernyms.append(target)
    return synset


def read_wordnet(folder: Path) -> tuple[dict[str, Synset], dict[str, int]]:
    """Noun synsets by offset, and SemCor tag counts by sense key.

    Example:
        >>> synsets, counts = read_wordnet(Path("/usr/share/wordnet"))  # doctest: +SKIP
        >>> synsets["02121620"].head, counts["cat%1:05:00::"]  # doctest: +SKIP
        ('cat', 18)
    """
    synsets = {}
    with open(folder / "data.noun", encoding="latin-1") as f:
        for line in f:
            if not line.startswith("  "):  # the licence header is indented
                s = parse_synset(line)
                synsets[s.offset] = s
    counts = {}
    with open(folder / "cntlist.rev", encoding="latin-1") as f:
        for line in f:
            key, _, count = line.split()
            counts[key] = int(count)
    return synsets, counts


def read_classes(path: Path) -> list[str]:
    """The classes' synset offsets (``n01440764`` -> ``01440764``), in class-index order.

    Example:
        >>> read_classes(CLASSES_FILE)[:2]
        ['01440764', '01443537']
    """
    return [line.split()[0][1:] for line in path.read_text().splitlines() if line.strip()]


def build(classes: list[str], synsets: dict[str, Synset], counts: dict[str, int]) -> dict:
    """The tag hierarchy as a JSON-able dict (rules 1 to 7 of the module's docstring).

    Example:
        >>> syn = {o: parse_synset(l) for o, l in [
        ...     ("1", "1 05 n 01 tabby 0 001 @ 3 n 0000 | x"), ("2", "2 05 n 01 lion 0 001 @ 4 n 0000 | x"),
        ...     ("3", "3 05 n 01 cat 0 001 @ 4 n 0000 | x"), ("4", "4 05 n 01 animal 0 000 | x")]}
        >>> counts = {"cat%1:05:00::": 5, "animal%1:05:00::": 9}
        >>> [(t["name"], t["classes"]) for t in build(["1", "2"], syn, counts)["tags"]]
        [('cat', [0])]
    """
    missing = [c for c in classes if c not in synsets]
    if missing:
        raise ValueError(f"classes not in WordNet's data.noun: {missing[:5]}")
    index = {c: i for i, c in enumerate(classes)}
    covered: dict[str, set[int]] = defaultdict(set)
    for i, c in enumerate(classes):
        for a in _ancestors(c, synsets):
            if a in index:
                raise ValueError(f"class {c} lies below class {a}: classes must be leaves")
            covered[a].add(i)

    def count(offset: str) -> int:
        return counts.get(synsets[offset].sense_key(), 0)

    limit = MAX_SHARE * len(classes)
    candidates = [
        a for a, cover in covered.items()
        if len(cover) <= limit and (count(a) > 0 or a in EVERYDAY) and a not in ABSTRACT
    ]
    groups: dict[frozenset, list[str]] = defaultdict(list)
    for a in candidates:
        groups[frozenset(covered[a])].append(a)
    leaf_names = {(frozenset([index[c]]), synsets[c].head) for c in classes}
    # Each tag: its synsets, the most common name first (a class has one).
    tags: dict[str, list[str]] = {c: [c] for c in classes}
    for cover, members in groups.items():
        members.sort(key=lambda a: (-count(a), len(_ancestors(a, synsets)), a))
        members = [a for a in members if (cover, synsets[a].head) not in leaf_names]
        if members:  # "airplane" above "airliner" stays; a second "hotdog" would not
            tags[members[0]] = members
    names = _unique_names(tags, synsets, count)
    broader = [a for a in tags if a not in index]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": "WordNet 3.0 (Princeton University); see SOURCE.md",
        "classes": [{"wnid": "n" + c, "name": names[c]} for c in classes],
        "tags": sorted(
            ({"wnid": "n" + a, "name": names[a], "classes": sorted(covered[a])} for a in broader),
            key=lambda t: (t["name"].lower(), t["wnid"]),
        ),
    }


def _ancestors(offset: str, synsets: dict[str, Synset]) -> set[str]:
    seen: set[str] = set()
    stack = [offset]
    while stack:
        for h in synsets[stack.pop()].hypernyms:
            if h not in seen:
                seen.add(h)
                stack.append(h)
    return seen


def _unique_names(tags: dict[str, list[str]], synsets: dict[str, Synset], count) -> dict[str, str]:
    """A unique name per tag: its most common head word; where two tags share one, the sense SemCor
    tags most keeps it and the others take their next synonym's head word or add their hypernym."""
    names = {key: synsets[key].head for key in tags}
    by_name: dict[str, list[str]] = defaultdict(list)
    for key, name in names.items():
        by_name[name].append(key)
    for name, owners in by_name.items():
        owners.sort(key=lambda o: (-count(o), o))
        for key in owners[1:]:
            taken = set(names.values())
            free = [synsets[a].head for a in tags[key][1:] if synsets[a].head not in taken]
            parent = synsets[key].hypernyms[0] if synsets[key].hypernyms else None
            names[key] = free[0] if free else f"{name} ({synsets[parent].head if parent else 'n' + key})"
    seen: set[str] = set()
    for key in tags:
        if names[key] in seen:  # same name and same hypernym's name: fall back to the id
            names[key] = f"{synsets[key].head} (n{key})"
        seen.add(names[key])
    return names


def main(argv: list[str] | None = None) -> int:
    """Build ``imagenet_tags.json`` from an installed WordNet 3.0 and print a summary.

    Example:
        >>> main(["--wordnet", "/usr/share/wordnet"])  # doctest: +SKIP
        1000 classes, 352 broader tags ...
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"),
                        help="folder holding WordNet 3.0's data.noun and cntlist.rev")
    parser.add_argument("--output", type=Path, default=OUTPUT_FILE)
    args = parser.parse_args(argv)
    if not (args.wordnet / "data.noun").exists():
        print(f"no WordNet at {args.wordnet}: apt-get install -y wordnet-base, or pass --wordnet DIR",
              file=sys.stderr)
        return 1
    synsets, counts = read_wordnet(args.wordnet)
    hierarchy = build(read_classes(CLASSES_FILE), synsets, counts)
    text = json.dumps(hierarchy, ensure_ascii=False, separators=(",", ":"))
    # One tag per line: small, and readable in a diff.
    text = text.replace("},{", "},\n{").replace(":[{", ":[\n{")
    args.output.write_text(text + "\n", encoding="utf-8")
    depth = [sum(i in t["classes"] for t in hierarchy["tags"]) for i in range(len(hierarchy["classes"]))]
    print(f"{len(hierarchy['classes'])} classes, {len(hierarchy['tags'])} broader tags, "
          f"broader tags per class: mean {sum(depth) / len(depth):.2f}, max {max(depth)}; "
          f"{args.output.stat().st_size} bytes in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
