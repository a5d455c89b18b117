"""Where a network's weights come from, and the checks that they are the right ones.

Three sources: the weights that ship with framelab (ImageNet MobileNetV2,
offline), torchvision's published weights (downloaded once into torch's
cache), and a file at a local path or any fsspec URL. Files are read with
``torch.load(weights_only=True)`` or safetensors: a weights file is data and
never gets to run code. Every source is identified by the sha256 of its
bytes, which provenance records and a saved config pins.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from framelab.frames.errors import InputError
from framelab.frames.storage import filesystem
from framelab.toolkits.deep_features.preprocessing import Preprocessing
from framelab.toolkits.deep_features.registry import Architecture

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"
BUNDLED = "bundled"
_TORCHVISION_PREFIX = "torchvision:"
_ENUM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class _Bundled:
    file: str
    sha256: str
    preprocessing: Preprocessing


# Resize the whole image to 224x224 (no crop), mean = std = 128/255: how the
# reference top-1 in shared/data/coral_test_images was produced (8 of 8 agree;
# shorter-side 256 + crop 224 gets only 6 of 8 on those photos).
_BUNDLED = {
    "mobilenet_v2": _Bundled(
        file="mobilenet_v2_1.0_224_quant_dequantized_torchvision.pth",
        sha256="8d6eeb8a805c2c2ea5af342bfea30706177b7d6829a6b15ee3b45d22447f0b0c",
        preprocessing=Preprocessing(
            resize=(224, 224), crop=None, mean=(128 / 255,) * 3, std=(128 / 255,) * 3
        ),
    )
}


@dataclass(frozen=True)
class Weights:
    """Loaded weights: the tensors, what they are, and how inputs were prepared for them.

    ``data`` holds the file's bytes when the weights came from a path or URL,
    so a saved model can keep a copy of them in its folder.
    """

    source: str
    sha256: str
    state_dict: dict
    preprocessing: Preprocessing | None
    data: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Weights({self.source!r}, sha256={self.sha256[:12]}..., {len(self.state_dict)} tensors)"


def bundled_labels() -> list[str]:
    """The 1,000 ImageNet class names, in the order of the bundled model's outputs.

    Example:
        >>> from framelab.toolkits.deep_features.weights import bundled_labels
        >>> len(bundled_labels()), bundled_labels()[0]
        (1000, 'tench, Tinca tinca')
    """
    lines = (BUNDLED_DIR / "imagenet_labels.txt").read_text().splitlines()
    return lines[1:]  # line 0 is TF-slim's "background" class, which the torch head dropped


def load_weights(
    arch: Architecture,
    weights: str | None = None,
    *,
    sha256: str | None = None,
    storage_options: dict | None = None,
) -> Weights:
    """Load the weights for ``arch`` from the bundled file, torchvision, or a path/URL.

    ``weights`` is None (the bundled weights when framelab ships some for
    ``arch``, else torchvision's default), ``"bundled"``, a torchvision weights
    name (``"IMAGENET1K_V1"``, ``"DEFAULT"``, optionally prefixed
    ``"torchvision:"``), or a path / fsspec URL of a ``.pth``/``.pt`` state
    dict or a ``.safetensors`` file. ``sha256``, when given, must match the
    bytes.

    Example:
        >>> from framelab.toolkits.deep_features import architecture
        >>> from framelab.toolkits.deep_features.weights import load_weights
        >>> load_weights(architecture("mobilenet_v2")).sha256[:8]
        '8d6eeb8a'
    """
    if weights is None:
        weights = BUNDLED if arch.name in _BUNDLED else _TORCHVISION_PREFIX + "DEFAULT"
    if not isinstance(weights, str):
        raise InputError(
            f"weights must be a path, an fsspec URL, 'bundled' or a torchvision weights name, "
            f"got {type(weights).__name__}; to use a torch.nn.Module you built, pass it as model="
        )
    if weights == BUNDLED:
        return _load_bundled(arch, sha256)
    name = weights[len(_TORCHVISION_PREFIX):] if weights.startswith(_TORCHVISION_PREFIX) else weights
    if _ENUM_NAME.match(name):
        return _load_torchvision(arch, name, sha256)
    data = _read_bytes(weights, storage_options)
    state_dict, digest = _parse_checked(data, weights, sha256)
    return Weights(source=weights, sha256=digest, state_dict=state_dict, preprocessing=None, data=data)


def weights_from_bytes(data: bytes, *, source: str, sha256: str) -> Weights:
    """Weights from a file's bytes already in memory (the copy a saved model keeps), pinned by ``sha256``.

    ``source`` is where the file first came from; its suffix (``.safetensors``
    or not) says how to parse the bytes.

    Example:
        >>> import io, torch
        >>> from framelab.toolkits.deep_features.weights import weights_from_bytes
        >>> buf = io.BytesIO(); torch.save(torch.nn.Linear(2, 2).state_dict(), buf)
        >>> import hashlib; digest = hashlib.sha256(buf.getvalue()).hexdigest()
        >>> sorted(weights_from_bytes(buf.getvalue(), source="w.pth", sha256=digest).state_dict)
        ['bias', 'weight']
    """
    state_dict, digest = _parse_checked(bytes(data), source, sha256)
    return Weights(source=source, sha256=digest, state_dict=state_dict, preprocessing=None, data=bytes(data))


def is_file_source(weights: str | None) -> bool:
    """True when ``weights`` names a file (a path or URL), not the bundled or a torchvision name.

    Example:
        >>> from framelab.toolkits.deep_features.weights import is_file_source
        >>> is_file_source(None), is_file_source("IMAGENET1K_V1"), is_file_source("../w.pth")
        (False, False, True)
    """
    if weights is None or weights == BUNDLED:
        return False
    name = weights[len(_TORCHVISION_PREFIX):] if weights.startswith(_TORCHVISION_PREFIX) else weights
    return not _ENUM_NAME.match(name)


def _load_bundled(arch: Architecture, sha256: str | None) -> Weights:
    bundled = _BUNDLED.get(arch.name)
    if bundled is None:
        raise InputError(
            f"framelab ships weights only for {', '.join(_BUNDLED)}, not {arch.name}; "
            "pass weights=<torchvision weights name, path or URL>"
        )
    state_dict, digest = _read_file(str(BUNDLED_DIR / bundled.file), None, sha256 or bundled.sha256)
    return Weights(BUNDLED, digest, state_dict, bundled.preprocessing)


def _load_torchvision(arch: Architecture, name: str, sha256: str | None) -> Weights:
    import torch

    member = arch.torchvision_weights(name)
    filename = os.path.basename(member.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cached.exists():
        try:
            torch.hub.load_state_dict_from_url(
                member.url, progress=False, check_hash=True, weights_only=True, map_location="cpu"
            )
        except Exception as exc:  # noqa: BLE001 - urllib, ssl, socket and hash errors alike
            raise InputError(
                f"cannot get torchvision's {arch.name} weights {member.name} from {member.url} "
                f"({type(exc).__name__}: {exc}). Offline? Fetch that file where there is a network "
                f"and pass weights='/path/to/{filename}' (a local path or any fsspec URL, e.g. "
                f"'s3://bucket/{filename}'), or use model='mobilenet_v2', whose ImageNet weights "
                "ship with framelab."
            ) from None
    state_dict, digest = _read_file(str(cached), None, sha256)
    return Weights(
        source=_TORCHVISION_PREFIX + member.name,
        sha256=digest,
        state_dict=state_dict,
        preprocessing=Preprocessing.from_torchvision(member.transforms()),
    )


def _read_file(url: str, storage_options: dict | None, sha256: str | None) -> tuple[dict, str]:
    return _parse_checked(_read_bytes(url, storage_options), url, sha256)


def _parse_checked(data: bytes, url: str, sha256: str | None) -> tuple[dict, str]:
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256.lower():
        raise InputError(
            f"the weights at {url} have sha256 {digest}, not the expected {sha256}: "
            "the file changed since these features were defined; restore it or drop the sha256 pin"
        )
    return _parse_state_dict(data, url), digest


def _read_bytes(url: str, storage_options: dict | None) -> bytes:
    if "://" not in url:
        path = Path(url).expanduser()
        if not path.is_file():
            raise InputError(f"no weights file at {url!r} (give a local path or an fsspec URL)")
        return _read_local(str(path.resolve()), path.stat().st_mtime_ns)

    try:
        fs, path = filesystem(url, storage_options)
        with fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"no weights file at {url!r}") from None
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise InputError(
            f"cannot read the weights at {url!r}: {type(exc).__name__}: {exc} "
            "(check the URL and storage_options=)"
        ) from None


@functools.lru_cache(maxsize=4)
def _read_local(path: str, mtime_ns: int) -> bytes:
    # Keyed by mtime so an overwritten file is read again.
    with open(path, "rb") as f:
        return f.read()


def _parse_state_dict(data: bytes, where: str) -> dict:
    import torch

    if where.endswith(".safetensors"):
        from safetensors.torch import load

        try:
            state = load(data)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise InputError(f"{where} is not a valid safetensors file: {exc}") from None
    else:
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"cannot load {where} as plain weights with torch.load(weights_only=True): {first}. "
                "framelab never unpickles code from a weights file; save the tensors alone with "
                "torch.save(model.state_dict(), path) or safetensors.torch.save_file."
            ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(torch.is_tensor(v) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise InputError(
            f"{where} does not hold a state_dict (a mapping of parameter names to tensors); "
            "save one with torch.save(model.state_dict(), path)"
        )
    # Checkpoints saved from DataParallel/DDP prefix every name with "module.".
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def state_dict_sha256(module) -> str:
    """A sha256 over a module's parameters and buffers (names, dtypes, shapes, values).

    Example:
        >>> import torch
        >>> from framelab.toolkits.deep_features.weights import state_dict_sha256
        >>> len(state_dict_sha256(torch.nn.Linear(2, 2)))
        64
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # numpy has no bfloat16; float64 holds every float dtype exactly.
        h.update((t.double() if t.is_floating_point() else t).numpy().tobytes())
    return h.hexdigest()
