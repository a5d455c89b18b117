"""The torch network that maps a normalised image batch to one feature vector per image."""

from __future__ import annotations

import difflib

import torch

from framelab.frames.errors import InputError
from framelab.toolkits.deep_features.registry import Architecture, known_models


def feature_network(model, state_dict: dict | None, layer: str | None):
    """A module in eval mode whose output is ``(batch, dim)``, and the layer name it reads.

    ``model`` is an :class:`Architecture` (loaded with ``state_dict``) or a
    user's ``torch.nn.Module`` (used as it is). ``layer=None`` means the
    penultimate activations for an architecture and the module's own output
    for a user module. Outputs with more than two dimensions are flattened.

    Example:
        >>> import torch
        >>> from framelab.toolkits.deep_features.network import feature_network
        >>> net, layer = feature_network(torch.nn.Conv2d(3, 4, 3), None, None)
        >>> net(torch.zeros(2, 3, 8, 8)).shape, layer
        (torch.Size([2, 144]), 'output')
    """
    if isinstance(model, Architecture):
        net = model.build()
        if layer is None or layer == model.penultimate:
            # The head is not used, so weights fine-tuned for another number of
            # classes fit too.
            _set_submodule(net, model.head, torch.nn.Identity())
            head = model.head + "."
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(head)}
            _load(net, state_dict, model.name)
            return _Flatten(net.eval()), model.penultimate
        _load(net, state_dict, model.name)
        return _Flatten(_extractor(net.eval(), layer, model.name)), layer
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a name or a torch.nn.Module, got {type(model).__name__}")
    if layer is None:
        return _Flatten(model.eval()), "output"
    return _Flatten(_extractor(model.eval(), layer, type(model).__name__)), layer


class _Flatten(torch.nn.Module):
    """Calls the network and flattens its output to (batch, dim)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if isinstance(out, dict):  # a torchvision feature extractor's {"features": tensor}
            (out,) = out.values()
        if not torch.is_tensor(out):
            raise InputError(
                f"the network returned a {type(out).__name__}, not a tensor; pass layer= to pick one output"
            )
        return out.flatten(1)


def _extractor(net, layer: str, name: str):
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    try:
        nodes = get_graph_node_names(net)[1]
    except Exception as exc:  # noqa: BLE001 - torch.fx tracing fails in many ways
        raise InputError(f"cannot trace {name} to find layer {layer!r}: {exc}") from None
    if layer not in nodes:
        close = difflib.get_close_matches(layer, nodes, n=5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise InputError(
            f"{name} has no layer {layer!r}{hint} "
            f"(all {len(nodes)} names: framelab.toolkits.deep_features.layer_names({name!r}))"
        )
    return create_feature_extractor(net, return_nodes={layer: "features"})


def _set_submodule(net, path: str, module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


def _load(net, state_dict: dict, name: str) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs {name} {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if items:
                more = f" and {len(items) - 8} more" if len(items) > 8 else ""
                parts.append(f"{label} ({len(items)}): {', '.join(items[:8])}{more}")
        raise InputError(
            f"the weights do not fit {name}: " + "; ".join(parts)
            + f". Are they for another architecture? Pass the matching model= "
            f"(known: {', '.join(known_models())})."
        )
    net.load_state_dict(state_dict)
