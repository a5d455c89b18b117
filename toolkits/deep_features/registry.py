"""The torchvision architectures framelab knows, and where their penultimate features are."""

from __future__ import annotations

from dataclasses import dataclass

from framelab.frames.errors import InputError


@dataclass(frozen=True)
class Architecture:
    """A torchvision classification network and its penultimate ("deep") features.

    ``head`` is the dotted path of the final classifier, replaced by an
    identity to read the penultimate activations; ``penultimate`` is the
    torchvision feature-extraction node name of that same output (what
    provenance records, so ``layer=None`` and ``layer=<that name>`` agree).

    Example:
        >>> from framelab.toolkits.deep_features import architecture
        >>> architecture("resnet18").dim
        512
    """

    name: str
    head: str
    penultimate: str
    dim: int

    def build(self):
        """The network with random weights (weights are loaded separately)."""
        import torchvision

        return torchvision.models.get_model(self.name, weights=None)

    def torchvision_weights(self, name: str = "DEFAULT"):
        """torchvision's weights enum member for this network (``"DEFAULT"``, ``"IMAGENET1K_V1"``...)."""
        import torchvision

        enum = torchvision.models.get_model_weights(self.name)
        try:
            return enum[name]
        except KeyError:
            known = ", ".join(["DEFAULT", *enum.__members__])
            raise InputError(
                f"torchvision has no weights {name!r} for {self.name}; it has: {known}"
            ) from None


_ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("mobilenet_v2", "classifier", "flatten", 1280),
        Architecture("mobilenet_v3_large", "classifier.3", "classifier.2", 1280),
        Architecture("resnet18", "fc", "flatten", 512),
        Architecture("resnet34", "fc", "flatten", 512),
        Architecture("resnet50", "fc", "flatten", 2048),
        Architecture("resnet101", "fc", "flatten", 2048),
        Architecture("efficientnet_b0", "classifier", "flatten", 1280),
        Architecture("convnext_tiny", "classifier.2", "classifier.1", 768),
        Architecture("vit_b_16", "heads", "getitem_5", 768),
    )
}


def known_models() -> list[str]:
    """Names accepted as ``model=``.

    Example:
        >>> from framelab.toolkits.deep_features import known_models
        >>> "mobilenet_v2" in known_models()
        True
    """
    return sorted(_ARCHITECTURES)


def architecture(name: str) -> Architecture:
    """The registered architecture called ``name``; a clear error listing the known ones otherwise.

    Example:
        >>> from framelab.toolkits.deep_features import architecture
        >>> architecture("mobilenet_v2").penultimate
        'flatten'
    """
    if not isinstance(name, str):
        raise InputError(
            f"model must be a name ({', '.join(known_models())}) or a torch.nn.Module, "
            f"got {type(name).__name__}"
        )
    try:
        return _ARCHITECTURES[name.lower()]
    except KeyError:
        raise InputError(
            f"unknown model {name!r}; known models: {', '.join(known_models())} "
            "(or pass your own torch.nn.Module with preprocessing=...)"
        ) from None


def layer_names(model: str = "mobilenet_v2") -> list[str]:
    """The layer names ``layer=`` accepts for a model (torchvision feature-extraction node names).

    Example:
        >>> from framelab.toolkits.deep_features import layer_names
        >>> "features.18" in layer_names("mobilenet_v2")
        True
    """
    from torchvision.models.feature_extraction import get_graph_node_names

    net = architecture(model).build() if isinstance(model, str) else model
    return get_graph_node_names(net.eval())[1]
