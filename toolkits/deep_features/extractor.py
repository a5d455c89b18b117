"""Deep features: every image of a column through a pretrained network, as a new vector column.

The public entry points are :func:`extract` (one call) and
:class:`DeepFeatureExtractor` (a configured, reusable, saveable extractor).
Extraction adds two nodes to the frame's plan and runs nothing: a decode
step (the Frame's own image chain, :mod:`.decode`) and a map through a pool
of model actors (:mod:`.inference`). The planner runs them: a few images in
the driver through one warm actor, more as CPU decode tasks feeding the
pool, on GPUs when the cluster has them. Actors stay warm between calls for
the same model, weights and device.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames import ActorStage, Frame
from framelab.frames.errors import InputError, check_columns
from framelab.frames.images import IMAGE_TYPE_NAME, is_encoded_type, is_image_type
from framelab.frames.validation import check_choice
from framelab.frames.vectors import vector_type
from framelab.platform.resources import cluster_facts, plan_model_pool
from framelab.platform.warm_pools import session_token
from framelab.toolkits.deep_features.decode import PIXELS_COLUMN
from framelab.toolkits.deep_features.preprocessing import Preprocessing
from framelab.toolkits.deep_features.registry import Architecture, architecture
from framelab.toolkits.deep_features.weights import (
    load_weights,
    state_dict_sha256,
    weights_from_bytes,
)
from framelab.toolkits.provenance import with_provenance

if TYPE_CHECKING:
    from framelab.frames import Frame

_DEVICES = ("auto", "cpu", "cuda")
_PRECISIONS = ("auto", "float32", "float16", "bfloat16")
_OUTPUT_DTYPES = ("float32", "float16")
_CONFIG_TYPE = "framelab.DeepFeatureExtractor"
_CONFIG_VERSION = 1
# Rows per Ray Data batch when batch_size="auto". On a GPU the actor further
# splits a batch into micro-batches that fit its free memory.
_AUTO_BATCH = {"cpu": 32, "cuda": 256}
# Rows a GPU actor takes per call: several micro-batches, so the host copy of one overlaps the
# GPU's work on the previous (a call of one micro-batch leaves the GPU idle during its copy).
_GPU_STAGE_ROWS = 2048


@dataclass(frozen=True)
class _Resolved:
    model: Any  # an Architecture or the user's torch.nn.Module
    model_name: str
    weights_source: str | None
    weights_sha256: str
    state_dict: dict | None
    preprocessing: Preprocessing
    layer: str
    dim: int
    weights_data: bytes | None = None  # the weights file's bytes, when they came from a path or URL


class DeepFeatureExtractor:
    """A pretrained network configured to turn images into feature vectors.

    Args:
        model: a registered architecture name (:func:`known_models`) or your
            own ``torch.nn.Module`` (then ``preprocessing=`` is required and
            ``layer=None`` uses its output as it is).
        weights: None (the weights bundled with framelab for mobilenet_v2,
            torchvision's default ones for the others), ``"bundled"``, a
            torchvision weights name such as ``"IMAGENET1K_V1"`` (downloaded
            into torch's cache once), or a path / fsspec URL of a state dict
            (``.pth``) or ``.safetensors`` file.
        weights_sha256: when given, the weights' bytes must have this sha256.
        layer: None for the penultimate activations, or a node name from
            :func:`layer_names` (outputs with spatial dimensions are flattened).
        preprocessing: how images are resized, cropped and normalised; None for
            the one the weights were trained with (ImageNet defaults for a file).
        output_dtype: "float32" or "float16" (features are computed in float32
            or under autocast, then stored in this type).
        batch_size: rows per batch, or "auto" (32 on a CPU; on a GPU the
            largest micro-batch that fits in free memory, up to 256 a batch).
        device: "auto" (GPUs when the cluster has them), "cpu" or "cuda".
        precision: "auto" (float16 autocast on a GPU, float32 on a CPU),
            "float32", "float16" or "bfloat16".
        storage_options: fsspec options for a weights URL (never saved in a config).

    Example:
        >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
        >>> extractor = DeepFeatureExtractor("mobilenet_v2")
        >>> extractor.dim
        1280
        >>> from framelab.toolkits import datasets
        >>> extractor.transform(datasets.caltech101(classes=["ewer"], per_class=2)).to_numpy("deep_features").shape
        (2, 1280)
    """

    def __init__(
        self,
        model: Any = "mobilenet_v2",
        *,
        weights: str | None = None,
        weights_sha256: str | None = None,
        layer: str | None = None,
        preprocessing: Preprocessing | dict | None = None,
        output_dtype: str = "float32",
        batch_size: int | str = "auto",
        device: str = "auto",
        precision: str = "auto",
        storage_options: dict | None = None,
    ):
        self.model = model if _is_module(model) else architecture(model).name
        if _is_module(model) and weights is not None:
            raise InputError("weights= is for a named model; load your own module's weights before passing it")
        if isinstance(preprocessing, dict):
            preprocessing = Preprocessing.from_dict(preprocessing)
        if preprocessing is None and _is_module(model):
            raise InputError(
                "a custom torch.nn.Module needs preprocessing=Preprocessing(resize=..., crop=..., "
                "mean=..., std=...) describing the input it was trained on"
            )
        if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
            raise InputError(f"preprocessing must be a Preprocessing or a dict, got {type(preprocessing).__name__}")
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise InputError(f"layer must be None or a layer name, got {layer!r}")
        check_choice("output_dtype", output_dtype, _OUTPUT_DTYPES)
        check_choice("device", device, _DEVICES)
        check_choice("precision", precision, _PRECISIONS)
        if batch_size != "auto" and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InputError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        self.weights = weights
        self.weights_sha256 = weights_sha256
        self.layer = layer
        self.preprocessing = preprocessing
        self.output_dtype = output_dtype
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.storage_options = storage_options
        # Weights given as bytes (the copy a saved model keeps) instead of being read from `weights`.
        self._weights_data: bytes | None = None
        self._resolved: _Resolved | None = None
        self._network: tuple | None = None
        self._module_digest: str | None = None

    # ------------------------------------------------------------ description
    @property
    def dim(self) -> int:
        """Length of each feature vector (loads the weights on first use)."""
        return self._resolve().dim

    @property
    def provenance(self) -> dict:
        """What the features column's ``framelab.provenance`` metadata will say.

        Example:
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> DeepFeatureExtractor().provenance["layer"]
            'flatten'
        """
        r = self._resolve()
        return {
            "model": r.model_name,
            "weights_sha256": r.weights_sha256,
            "layer": r.layer,
            "preprocessing": r.preprocessing.to_dict(),
            "dim": r.dim,
            "dtype": self.output_dtype,
        }

    def output_field(self, name: str = "deep_features") -> pa.Field:
        """The Arrow field of the features column, provenance included.

        Example:
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> DeepFeatureExtractor().output_field().type
            FixedSizeListType(fixed_size_list<item: float>[1280])
        """
        field = pa.field(name, vector_type(self.dim, self.output_dtype))
        return with_provenance(field, self.provenance)

    def __repr__(self) -> str:
        model = self.model if isinstance(self.model, str) else f"<{type(self.model).__name__}>"
        return (
            f"DeepFeatureExtractor(model={model!r}, weights={self.weights!r}, layer={self.layer!r}, "
            f"output_dtype={self.output_dtype!r}, device={self.device!r})"
        )

    # ---------------------------------------------------------------- config
    def to_config(self) -> dict:
        """A JSON-able description that :meth:`from_config` turns back into the same extractor.

        Weights are referenced (bundled, torchvision name, or path/URL) and
        pinned by sha256; execution choices (device, batch size, precision) and
        storage options are not saved.

        Example:
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> config = DeepFeatureExtractor().to_config()
            >>> DeepFeatureExtractor.from_config(config).provenance == DeepFeatureExtractor().provenance
            True
        """
        r = self._resolve()
        if not isinstance(r.model, Architecture):
            raise InputError(
                "an extractor around your own torch.nn.Module cannot be saved as a config; save its "
                "weights (torch.save(module.state_dict(), path)) and use a registered architecture "
                "with weights=path"
            )
        return {
            "type": _CONFIG_TYPE,
            "version": _CONFIG_VERSION,
            "model": r.model_name,
            "weights": r.weights_source,
            "weights_sha256": r.weights_sha256,
            "layer": r.layer,
            "preprocessing": r.preprocessing.to_dict(),
            "output_dtype": self.output_dtype,
        }

    @classmethod
    def from_config(cls, config: dict, *, weights_data: bytes | None = None, **options: Any) -> DeepFeatureExtractor:
        """Rebuild an extractor from :meth:`to_config`; ``options`` set execution choices
        (device, batch_size, precision, storage_options).

        ``weights_data`` gives the weights file's bytes (the copy a saved model
        keeps, see :meth:`weights_copy`): they are used, checked against the
        config's sha256, instead of reading ``config["weights"]``. A config
        that :meth:`to_config` could not have written is refused, naming the field.

        Example:
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> DeepFeatureExtractor.from_config(DeepFeatureExtractor().to_config(), device="cpu").device
            'cpu'
        """
        _check_config(config)
        try:
            preprocessing = Preprocessing.from_dict(config["preprocessing"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"extractor config field 'preprocessing' is not valid ({type(err).__name__}: {err})") from None
        extractor = cls(
            config["model"],
            weights=config["weights"],
            weights_sha256=config["weights_sha256"],
            layer=config["layer"],
            preprocessing=preprocessing,
            output_dtype=config["output_dtype"],
            **options,
        )
        extractor._weights_data = None if weights_data is None else bytes(weights_data)
        return extractor

    @classmethod
    def from_weights_data(cls, model: str, data: bytes, *, source: str, **options: Any) -> DeepFeatureExtractor:
        """An extractor over weights held in memory (a fine-tuned network's file), pinned by their sha256.

        ``source`` names the file (its suffix, ``.safetensors`` or ``.pth``,
        says how to parse ``data``); a saved model keeps ``data`` in its folder
        (:meth:`weights_copy`). ``options`` are the constructor's.

        Example:
            >>> import hashlib
            >>> from safetensors.torch import save
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor, architecture
            >>> data = save(architecture("mobilenet_v2").build().state_dict())
            >>> extractor = DeepFeatureExtractor.from_weights_data("mobilenet_v2", data, source="tuned.safetensors")
            >>> extractor.weights_copy()[0], extractor.provenance["weights_sha256"] == hashlib.sha256(data).hexdigest()
            ('weights.safetensors', True)
        """
        extractor = cls(model, weights=source, weights_sha256=hashlib.sha256(data).hexdigest(), **options)
        extractor._weights_data = bytes(data)
        return extractor

    def weights_copy(self) -> tuple[str, bytes] | None:
        """(file name, bytes) of the weights when they came from a path or URL; None for bundled or torchvision ones.

        A saved model keeps these bytes in its folder, so it never depends on
        the original file (see :meth:`from_config`'s ``weights_data``).

        Example:
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> DeepFeatureExtractor("mobilenet_v2").weights_copy() is None  # bundled with framelab
            True
        """
        r = self._resolve()
        if r.weights_data is None:
            return None
        suffix = ".safetensors" if str(r.weights_source).endswith(".safetensors") else ".pth"
        return "weights" + suffix, r.weights_data

    # ------------------------------------------------------------- execution
    def transform(self, frame: Frame, image_column: str | None = None, output_column: str = "deep_features") -> Any:
        """The frame with a column of feature vectors added (null where the image is null or undecodable).

        ``image_column=None`` uses the frame's only image column. A binary
        column of encoded image files works as well. Nothing runs until a
        result is asked for: the frame's plan gains a decode step and a map
        through warm model actors (``frame.explain()`` shows them).

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits.datasets import caltech101_path
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> photos = Frame.read_images(str(caltech101_path() / "ewer")).head(2)
            >>> featured = DeepFeatureExtractor().transform(photos)
            >>> featured.columns                       # known from the plan: no model has run
            ['image', 'path', 'error', 'deep_features']
            >>> featured.to_numpy("deep_features").shape
            (2, 1280)
        """
        if not isinstance(frame, Frame):
            raise InputError(f"transform expects a framelab Frame, got {type(frame).__name__}")
        schema = frame.schema
        column = find_image_column(schema, image_column)
        if not isinstance(output_column, str) or not output_column:
            raise InputError(f"output_column must be a non-empty string, got {output_column!r}")
        if output_column in schema.names:
            raise InputError(
                f"the frame already has a column {output_column!r}; pass output_column=<another name> "
                "or drop that column first"
            )
        r = self._resolve()
        facts = cluster_facts()
        device = self.device if self.device != "auto" else ("cuda" if facts.gpus >= 1 else "cpu")
        precision = self.precision if self.precision != "auto" else ("float16" if device == "cuda" else "float32")
        pool = plan_model_pool(device, facts.cpus, facts.gpus)
        batch = _AUTO_BATCH[device] if self.batch_size == "auto" else self.batch_size
        field = self.output_field(output_column)
        config = StageConfigSpec(
            layer=self.layer,
            preprocessing=r.preprocessing,
            output_field=field,
            device=device,
            num_cpus=pool.num_cpus,
            precision=precision,
            batch_size=None if self.batch_size == "auto" and device == "cuda" else batch,
        )
        stage = ActorStage(
            key=(self._identity(), device, config),
            factory=functools.partial(_feature_actor, self._network_ref(), config),
            output_schema=_ReplacePixels(field),
            device=device,
            batch_rows=batch,
            # A GPU actor takes several micro-batches a call, so the host copy of one overlaps the GPU's work.
            rows_per_call=_GPU_STAGE_ROWS if device == "cuda" and self.batch_size == "auto" else batch,
            label=f"deep features ({r.model_name}, layer {r.layer})",
        )
        return frame.with_column(PIXELS_COLUMN, r.preprocessing.pixels(column)).map_actors(stage)

    def _identity(self) -> tuple:
        """What makes two extractors' actors interchangeable: the network and its weights, by content."""
        r = self._resolve()
        if isinstance(r.model, Architecture):
            return (r.model_name, r.weights_sha256)
        if self._module_digest is None:
            import ray.cloudpickle

            # A module's code and closure matter as much as its weights: hash the module as it is shipped.
            self._module_digest = hashlib.sha256(ray.cloudpickle.dumps(r.model)).hexdigest()
        return (r.model_name, r.weights_sha256, self._module_digest)

    def _network_ref(self) -> list:
        """The network and weights in the object store, once per Ray session (in a list, so Ray passes the ref)."""
        import ray

        session = session_token()
        if self._network is None or self._network[0] != session:
            r = self._resolve()
            self._network = (session, [ray.put((r.model, r.state_dict))])
        return self._network[1]

    def __getstate__(self) -> dict:
        # An extractor travels with every call of a Ray Client session: the network's weights (megabytes)
        # are read again where it lands, from the same source and checked against the same sha256,
        # unless they only exist as bytes here.
        state = self.__dict__.copy()
        if self._weights_data is None:
            state["_resolved"] = None
        state["_network"] = None
        return state

    def _resolve(self) -> _Resolved:
        if self._resolved is None:
            self._resolved = _resolve(self)
        return self._resolved


def find_image_column(schema: pa.Schema, name: str | None = None) -> str:
    """The image column to read: ``name`` checked, or the schema's only image column.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.deep_features.extractor import find_image_column
        >>> find_image_column(pa.schema([("img", pa.binary())]), "img")
        'img'
    """
    if name is None:
        images = [f.name for f in schema if _is_image_field(f)]
        if len(images) == 1:
            return images[0]
        if images:
            raise InputError(
                f"the frame has {len(images)} image columns ({', '.join(map(repr, images))}); "
                "pass image_column= to pick one"
            )
        described = ", ".join(f"{f.name!r} ({_type_name(f)})" for f in schema) or "(no columns)"
        raise InputError(
            f"the frame has no image column; its columns are {described}. Read images with "
            "Frame.read_images(...), or pass image_column=<a binary column of "
            "encoded image files>"
        )
    check_columns([name], schema.names)
    field = schema.field(name)
    if not (_is_image_field(field) or is_encoded_type(field.type)):
        raise InputError(
            f"column {name!r} holds {_type_name(field)}, not images; deep features need an image "
            "column (framelab.image, from read_images) or a binary column of encoded image files"
        )
    return name


def _is_image_field(field: pa.Field) -> bool:
    if is_image_type(field.type):
        return True
    # The extension type can arrive unregistered, as its storage plus metadata.
    return (field.metadata or {}).get(b"ARROW:extension:name") == IMAGE_TYPE_NAME.encode()


def _type_name(field: pa.Field) -> str:
    return "image" if _is_image_field(field) else str(field.type)


def _is_module(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)


@dataclass(frozen=True)
class StageConfigSpec:
    """Everything a model actor needs but the network itself (which travels by reference)."""

    layer: str | None
    preprocessing: Preprocessing
    output_field: pa.Field
    device: str
    num_cpus: float
    precision: str
    batch_size: int | None


def _check_config(config: Any) -> None:
    """Refuse a config :meth:`DeepFeatureExtractor.to_config` could not have written, naming the field."""
    if not isinstance(config, dict) or config.get("type") != _CONFIG_TYPE:
        raise InputError(f"not a DeepFeatureExtractor config (expected type {_CONFIG_TYPE!r}): {config!r:.200}")
    version = config.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"extractor config field 'version' must be an integer, got {version!r}")
    if version > _CONFIG_VERSION:
        raise InputError(f"this config was written by a newer framelab (version {version}); upgrade framelab")
    fields = {"model": str, "weights": (str, type(None)), "weights_sha256": str, "layer": str,
              "preprocessing": dict, "output_dtype": str}
    for key, types in fields.items():
        if key not in config:
            raise InputError(f"extractor config field {key!r} is missing")
        if not isinstance(config[key], types):
            raise InputError(f"extractor config field {key!r} has the wrong type ({type(config[key]).__name__})")
    if not re.fullmatch(r"[0-9a-f]{64}", config["weights_sha256"]):
        raise InputError("extractor config field 'weights_sha256' must be 64 lowercase hex digits")
    check_choice("output_dtype", config["output_dtype"], _OUTPUT_DTYPES)


def _feature_actor(network: list, spec: StageConfigSpec) -> Any:
    """Build the worker inside a model actor (the factory of the extraction's ActorStage)."""
    from framelab.toolkits.deep_features.inference import FeatureActor, StageConfig

    return FeatureActor(StageConfig(
        network, spec.layer, spec.preprocessing, spec.output_field, PIXELS_COLUMN,
        spec.device, spec.num_cpus, spec.precision, spec.batch_size,
    ))


class _ReplacePixels:
    """The extraction's output schema: the decoded pixels out, the features column in."""

    def __init__(self, field: pa.Field):
        self.field = field

    def __call__(self, schema: pa.Schema) -> pa.Schema:
        kept = [f for f in schema if f.name != PIXELS_COLUMN]
        return pa.schema([*kept, self.field], metadata=schema.metadata)


def _resolve(extractor: DeepFeatureExtractor) -> _Resolved:
    import torch

    from framelab.toolkits.deep_features.network import feature_network

    if isinstance(extractor.model, str):
        arch = architecture(extractor.model)
        if extractor._weights_data is not None:
            weights = weights_from_bytes(
                extractor._weights_data, source=str(extractor.weights), sha256=extractor.weights_sha256
            )
        else:
            weights = load_weights(
                arch,
                extractor.weights,
                sha256=extractor.weights_sha256,
                storage_options=extractor.storage_options,
            )
        preprocessing = extractor.preprocessing or weights.preprocessing or _torchvision_preprocessing(arch)
        model, name, source, sha, state = arch, arch.name, weights.source, weights.sha256, weights.state_dict
        data = weights.data
    else:
        model, name, source, state = extractor.model, f"custom:{type(extractor.model).__name__}", None, None
        data = None
        sha = state_dict_sha256(model)
        preprocessing = extractor.preprocessing
    net, layer = feature_network(model, state, extractor.layer)
    height, width = preprocessing.output_size
    with torch.inference_mode():
        dim = int(np.prod(net(torch.zeros(1, 3, height, width)).shape[1:]))
    return _Resolved(model, name, source, sha, state, preprocessing, layer, dim, data)


def _torchvision_preprocessing(arch: Architecture) -> Preprocessing:
    # Weights from a file say nothing of their preprocessing: assume the
    # torchvision recipe for the architecture (ImageNet mean/std).
    return Preprocessing.from_torchvision(arch.torchvision_weights("DEFAULT").transforms())
