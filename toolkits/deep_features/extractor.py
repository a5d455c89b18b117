"""Deep features: every image of a column through a pretrained network, as a new vector column.

The public entry points are :func:`extract` (one call) and
:class:`DeepFeatureExtractor` (a configured, reusable, saveable extractor).
Execution is two Ray Data stages: CPU tasks decode and resize
(:mod:`.decode`), then an actor pool that loads the network once per actor
runs it (:mod:`.inference`), on GPUs when the cluster has them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from framelab.frames.errors import InputError, check_columns
from framelab.frames.vectors import vector_type
from framelab.toolkits.deep_features.decode import PIXELS_COLUMN, decode_batch
from framelab.toolkits.deep_features.preprocessing import Preprocessing
from framelab.toolkits.deep_features.provenance import with_provenance
from framelab.toolkits.deep_features.registry import Architecture, architecture

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
# Logical CPUs of one decode task: small, so decoding always fits beside the
# model actors (even a 1-CPU node running one actor keeps room to decode).
_DECODE_CPUS = {"cpu": 0.25, "cuda": 1.0}
_ACTOR_RETRIES = 3


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
        >>> features = extractor.transform(frame)  # doctest: +SKIP
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
        _check_choice("output_dtype", output_dtype, _OUTPUT_DTYPES)
        _check_choice("device", device, _DEVICES)
        _check_choice("precision", precision, _PRECISIONS)
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
        self._resolved: _Resolved | None = None

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
        """The Arrow field of the features column, provenance included."""
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
    def from_config(cls, config: dict, **options: Any) -> DeepFeatureExtractor:
        """Rebuild an extractor from :meth:`to_config`; ``options`` set execution choices
        (device, batch_size, precision, storage_options).

        Example:
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> DeepFeatureExtractor.from_config(DeepFeatureExtractor().to_config(), device="cpu").device
            'cpu'
        """
        if not isinstance(config, dict) or config.get("type") != _CONFIG_TYPE:
            raise InputError(f"not a DeepFeatureExtractor config (expected type {_CONFIG_TYPE!r}): {config!r:.200}")
        if config.get("version", 0) > _CONFIG_VERSION:
            raise InputError(
                f"this config was written by a newer framelab (version {config['version']}); upgrade framelab"
            )
        return cls(
            config["model"],
            weights=config["weights"],
            weights_sha256=config["weights_sha256"],
            layer=config["layer"],
            preprocessing=Preprocessing.from_dict(config["preprocessing"]),
            output_dtype=config["output_dtype"],
            **options,
        )

    # ------------------------------------------------------------- execution
    def transform(self, frame: Any, image_column: str | None = None, output_column: str = "deep_features") -> Any:
        """The frame with a column of feature vectors added (null where the image is null or undecodable).

        ``image_column=None`` uses the frame's only image column. A binary
        column of encoded image files works as well.

        Example:
            >>> from framelab.frames.images import read_images
            >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
            >>> frame = read_images("../shared/data/coral_test_images")  # doctest: +SKIP
            >>> DeepFeatureExtractor().transform(frame).columns  # doctest: +SKIP
            ['image', 'path', 'error', 'deep_features']
        """
        import ray

        from framelab.frames import Frame
        from framelab.platform.resources import cluster_gpus
        from framelab.platform.session import ensure_connected
        from framelab.toolkits.deep_features.inference import FeatureActor, StageConfig

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
        ensure_connected()
        device = self.device if self.device != "auto" else ("cuda" if cluster_gpus() >= 1 else "cpu")
        precision = self.precision if self.precision != "auto" else ("float16" if device == "cuda" else "float32")
        pool = _actor_pool(device)
        batch = _AUTO_BATCH[device] if self.batch_size == "auto" else self.batch_size
        config = StageConfig(
            network=[ray.put((r.model, r.state_dict))],
            layer=self.layer,
            preprocessing=r.preprocessing,
            output_field=self.output_field(output_column),
            pixels_column=PIXELS_COLUMN,
            device=device,
            num_cpus=pool.num_cpus,
            precision=precision,
            batch_size=None if self.batch_size == "auto" and device == "cuda" else batch,
        )
        source = frame.to_ray()
        dataset = source.map_batches(
            decode_batch,
            batch_format="pyarrow",
            batch_size=batch,
            fn_kwargs={"column": column, "preprocessing": r.preprocessing},
            num_cpus=_DECODE_CPUS[device],
            udf_modifying_row_count=False,
            **_decode_concurrency(device, pool),
        )
        with warnings.catch_warnings():
            # Ray 2.60 marks ray_remote_args deprecated but has no other way to
            # bound actor restarts; its default (restart forever) would loop on
            # a batch that kills the actor every time.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            dataset = dataset.map_batches(
                FeatureActor,
                batch_format="pyarrow",
                batch_size=_GPU_STAGE_ROWS if device == "cuda" and self.batch_size == "auto" else batch,
                zero_copy_batch=True,
                fn_constructor_args=(config,),
                udf_modifying_row_count=False,
                # An actor that dies (a lost node, an OOM kill) is restarted and
                # its batch retried, so no row is lost or duplicated.
                max_restarts=_ACTOR_RETRIES,
                max_task_retries=_ACTOR_RETRIES,
                **_start_full(pool, source),
            )
        # Known without running anything: asking a lazy frame for its schema
        # would otherwise start the actor pool and run the model on a block.
        return Frame.from_ray(dataset, schema=schema.append(config.output_field))

    def _resolve(self) -> _Resolved:
        if self._resolved is None:
            self._resolved = _resolve(self)
        return self._resolved


def extract(
    frame: Any,
    image_column: str | None = None,
    model: Any = "mobilenet_v2",
    layer: str | None = None,
    output_column: str = "deep_features",
    batch_size: int | str = "auto",
    device: str = "auto",
    **options: Any,
) -> Any:
    """Add a column of deep features: each image through a pretrained network.

    ``options`` are :class:`DeepFeatureExtractor`'s (``weights``,
    ``weights_sha256``, ``preprocessing``, ``output_dtype``, ``precision``,
    ``storage_options``). The column's Arrow field metadata records the
    provenance (see :func:`provenance_of`).

    Example:
        >>> from framelab.frames.images import read_images
        >>> from framelab.toolkits import deep_features
        >>> frame = read_images("../shared/data/coral_test_images")  # doctest: +SKIP
        >>> deep_features.extract(frame).schema.field("deep_features").type  # doctest: +SKIP
        FixedSizeListType(fixed_size_list<item: float>[1280])
    """
    extractor = DeepFeatureExtractor(
        model, layer=layer, batch_size=batch_size, device=device, **options
    )
    return extractor.transform(frame, image_column=image_column, output_column=output_column)


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
            "framelab.frames.images.read_images(...), or pass image_column=<a binary column of "
            "encoded image files>"
        )
    check_columns([name], schema.names)
    field = schema.field(name)
    if not (_is_image_field(field) or pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)):
        raise InputError(
            f"column {name!r} holds {_type_name(field)}, not images; deep features need an image "
            "column (framelab.image, from read_images) or a binary column of encoded image files"
        )
    return name


def _is_image_field(field: pa.Field) -> bool:
    from framelab.frames.images import IMAGE_TYPE_NAME, is_image_type

    if is_image_type(field.type):
        return True
    # The extension type can arrive unregistered, as its storage plus metadata.
    return (field.metadata or {}).get(b"ARROW:extension:name") == IMAGE_TYPE_NAME.encode()


def _type_name(field: pa.Field) -> str:
    return "image" if _is_image_field(field) else str(field.type)


def _is_module(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _start_full(pool, dataset) -> dict:
    """Ray kwargs that start every actor at once when that cannot starve upstream tasks.

    Loading a network is the slow part of an actor's life, and Ray Data grows
    a pool only once a queue has built up, so a pool that starts small may stay
    small. But Ray Data starts a pool before its inputs are computed, and
    actors spread over nodes: if they left no node with a whole CPU, the read
    tasks feeding them could never be scheduled. So the pool starts full only
    when its input is already computed or every node keeps a whole CPU beside
    its share of actors.
    """
    import dataclasses
    import math

    import ray
    from ray.data.dataset import MaterializedDataset

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    per_node = math.ceil(pool.max_size / max(1, len(nodes)))
    roomy = nodes and all(r.get("CPU", 0) - per_node * pool.num_cpus >= 1 for r in nodes)
    if roomy or isinstance(dataset, MaterializedDataset):
        pool = dataclasses.replace(pool, initial_size=pool.max_size)
    return pool.ray_kwargs()


def _decode_concurrency(device: str, pool) -> dict:
    """On CPU, decode tasks get only the CPUs the actors leave: unbounded, they ran
    four to a core beside the actors and cost the model stage 18% of its speed
    (1,200 Caltech images on 2 cores: 31 images/s unbounded, 45 with one decode task)."""
    if device == "cuda":
        return {}  # decoding is the bottleneck there; GPU actors hold a sliver of CPU
    import ray

    # At least one per node, so every node's actors are fed from local blocks.
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return {"concurrency": max(1, nodes, int(pool.spare_cpus))}


def _actor_pool(device: str):
    from framelab.platform.resources import actor_pool, cluster_cpus

    if device == "cuda":
        return actor_pool(use_gpu=True)
    cpus = cluster_cpus()
    if cpus < 8:
        # Small clusters: one single-threaded actor per CPU, with one whole CPU
        # of Ray's accounting left free so read and decode tasks always get
        # scheduled. Physically the actors share cores with decoding, which is
        # cheap beside the network (~10x less work per image).
        reserve = 1.0
        per_actor = max(0.5, (cpus - reserve) / max(1.0, cpus))
        return actor_pool(use_gpu=False, cpus_per_actor=per_actor, reserve_cpus=reserve)
    # Bigger ones: two-thread actors and an eighth of the CPUs for reading and decoding.
    return actor_pool(use_gpu=False, cpus_per_actor=2.0, reserve_cpus=cpus / 8)


def _resolve(extractor: DeepFeatureExtractor) -> _Resolved:
    import numpy as np
    import torch

    from framelab.toolkits.deep_features.network import feature_network
    from framelab.toolkits.deep_features.weights import load_weights, state_dict_sha256

    if isinstance(extractor.model, str):
        arch = architecture(extractor.model)
        weights = load_weights(
            arch,
            extractor.weights,
            sha256=extractor.weights_sha256,
            storage_options=extractor.storage_options,
        )
        preprocessing = extractor.preprocessing or weights.preprocessing or _torchvision_preprocessing(arch)
        model, name, source, sha, state = arch, arch.name, weights.source, weights.sha256, weights.state_dict
    else:
        model, name, source, state = extractor.model, f"custom:{type(extractor.model).__name__}", None, None
        sha = state_dict_sha256(model)
        preprocessing = extractor.preprocessing
    net, layer = feature_network(model, state, extractor.layer)
    height, width = preprocessing.output_size
    with torch.inference_mode():
        dim = int(np.prod(net(torch.zeros(1, 3, height, width)).shape[1:]))
    return _Resolved(model, name, source, sha, state, preprocessing, layer, dim)


def _torchvision_preprocessing(arch: Architecture) -> Preprocessing:
    # Weights from a file say nothing of their preprocessing: assume the
    # torchvision recipe for the architecture (ImageNet mean/std).
    return Preprocessing.from_torchvision(arch.torchvision_weights("DEFAULT").transforms())
