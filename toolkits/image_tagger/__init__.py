"""Image tagging: searchable tags for every image, out of the box or trained on your own tags.

``create()`` gives a tagger that needs no training: the bundled MobileNetV2's
ImageNet classes, rolled up WordNet's hierarchy to broader tags ("macaw" is
also "parrot", "bird" and "animal"). ``create(frame, "tags")`` trains one on
a column of tag lists. Either way ``tagger.tag(frame)`` adds a ``tags``
column (``{"tag", "score"}`` lists, best first) that :data:`tags` searches.

Example:
    >>> from framelab.toolkits import image_tagger
    >>> tagger = image_tagger.create()
    >>> tagger.kind, len(tagger.vocabulary)
    ('image_tagger', 1330)
    >>> tagged = tagger.tag(Frame.read_images("photos/"))  # doctest: +SKIP
    >>> birds = tagged.filter(image_tagger.tags.has("bird", min_score=0.5))  # doctest: +SKIP
"""

from framelab.toolkits.image_tagger.image_tagger import (
    DEFAULT_K,
    DEFAULT_MIN_SCORE,
    ImageTagger,
    create,
)
from framelab.toolkits.image_tagger.search import TagColumn, col, tags

__all__ = ["DEFAULT_K", "DEFAULT_MIN_SCORE", "ImageTagger", "TagColumn", "col", "create", "tags"]
