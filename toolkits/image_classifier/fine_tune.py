"""Fine-tuning: ``image_classifier.create(frame, target, fine_tune=True)`` trains the network itself.

The driver's part, in order: every check of the input and options (before
anything runs), the linear probe that gives the head its start (today's
``image_classifier``, on un-augmented features), the per-epoch Ray Data
pipelines that decode and augment in CPU tasks (:mod:`.augment`), and one
``ray.train.torch.TorchTrainer`` whose workers run :func:`.train_loop.train_worker`
under DDP. The result is an :class:`ImageClassifier` like any other: its
extractor is the fine-tuned backbone (its own weights sha256, kept as
safetensors) and its classifier is the fine-tuned head, in the probe's
standardised feature space, so predict, evaluate, save and load are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.frames.validation import check_positive_int, check_seed
from framelab.toolkits.classifier import LogisticClassifier
from framelab.toolkits.deep_features import (
    DeepFeatureExtractor,
    Preprocessing,
    architecture,
    find_image_column,
)
from framelab.toolkits.deep_features.weights import load_weights
from framelab.toolkits.features import FeatureEncoder, check_frame, check_target
from framelab.toolkits.image_classifier.augment import ROW_COLUMN, Augmentation, training_batch
from framelab.toolkits.image_classifier.train_loop import Recipe, backbone_blocks, recipe_dict

if TYPE_CHECKING:
    from framelab.frames import Frame

# Training batch (images per step, over all workers) when batch_size="auto".
AUTO_BATCH = 32
# Times Ray Train restarts the worker group from the last checkpoint after a worker or node is lost.
MAX_FAILURES = 3
# CPUs per node kept for the Ray Data tasks that decode and augment ahead of the workers.
FEEDING_CPUS_PER_NODE = 0.5
_RUN_NAME = "fine_tune"
_FINGERPRINT = "framelab_fine_tune.json"
_WEIGHTS_SOURCE = "fine_tuned.safetensors"


@dataclass(frozen=True)
class FineTuneOptions:
    """The options of ``create(..., fine_tune=True)`` beyond the linear probe's, checked in one place.

    Example:
        >>> from framelab.toolkits.image_classifier.fine_tune import FineTuneOptions
        >>> FineTuneOptions(epochs=0).check()
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: epochs must be a positive integer, got 0 (one epoch is one pass over the training images)
    """

    epochs: int = 10
    learning_rate: float = 0.001
    layers: int | str = "all"
    augment: bool = True
    num_workers: int | str = "auto"
    use_gpu: bool | str = "auto"
    checkpoint: str | None = None
    resolution: int | None = None

    def check(self) -> FineTuneOptions:
        """The options, each refused with what was expected when it is not usable."""
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, np.integer)) or self.epochs <= 0:
            raise InputError(
                f"epochs must be a positive integer, got {self.epochs!r} (one epoch is one pass over the training images)"
            )
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise InputError(f"learning_rate must be a positive number (the head's; the backbone gets a tenth), got {lr!r}")
        if not (self.layers == "all" or (isinstance(self.layers, (int, np.integer)) and not isinstance(self.layers, bool)
                                         and self.layers >= 0)):
            raise InputError(
                f"layers must be 'all' or how many of the network's last blocks to train (0: the head alone), "
                f"got {self.layers!r}"
            )
        if not isinstance(self.augment, bool):
            raise InputError(f"augment must be True or False, got {self.augment!r}")
        if self.num_workers != "auto":
            check_positive_int(self.num_workers, "num_workers")
        if self.use_gpu not in ("auto", True, False):
            raise InputError(f"use_gpu must be 'auto', True or False, got {self.use_gpu!r}")
        if self.checkpoint is not None and (not isinstance(self.checkpoint, str) or not self.checkpoint):
            raise InputError(f"checkpoint must be a folder path or fsspec URL, got {self.checkpoint!r}")
        if self.resolution is not None and (
            isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 32
        ):
            raise InputError(f"resolution must be None (the network's own) or an int >= 32, got {self.resolution!r}")
        return self


def fine_tune(
    frame: Frame,
    target: str,
    options: FineTuneOptions,
    *,
    image_column: str | None,
    model: str,
    feature_column: str,
    l2_penalty: float,
    max_iterations: int,
    validation_set: Any,
    class_weights: Any,
    seed: int | None,
    verbose: bool,
    batch_size: int | str,
    device: str,
    extractor_options: dict,
    linear_probe: Callable[..., Any],
) -> Any:
    """Fine-tune ``model`` on ``frame`` (see the module docstring); the ImageClassifier it returns.

    ``linear_probe`` is ``image_classifier.create`` itself, handed down by it:
    it trains the probe that gives the head its start, and the model returned
    is of the probe's class.

    Example (skipped here: a training run takes minutes on 2 cores; tests/toolkits/test_fine_tune.py
    runs this very call):
        >>> from framelab.toolkits import datasets, image_classifier
        >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=8)
        >>> model = image_classifier.create(photos, "label", fine_tune=True, epochs=1, resolution=64,
        ...                                 seed=0, verbose=False)  # doctest: +SKIP
        >>> len(model.training["epochs"])  # doctest: +SKIP
        1
    """
    started = time.perf_counter()
    options = options.check()
    frame = check_frame(frame)
    check_target(frame.schema, target)
    image_column = find_image_column(frame.schema, image_column)
    given_seed, seed = seed, check_seed(seed)
    if not isinstance(model, str):
        raise InputError(
            "fine_tune needs a registered architecture (model='mobilenet_v2', 'resnet50', ...), not your own "
            "torch.nn.Module: save its weights and pass model=<its architecture>, weights=<path>"
        )
    if extractor_options.get("layer") is not None:
        raise InputError("fine_tune trains the network's penultimate features and head; leave layer= unset")
    arch = architecture(model)
    blocks = backbone_blocks(arch.build(), arch.head)
    if options.layers != "all" and options.layers > len(blocks):
        raise InputError(
            f"layers={options.layers} but {arch.name} has {len(blocks)} blocks "
            f"({blocks[0][0]} ... {blocks[-1][0]}); pass layers=<0..{len(blocks)}> or 'all'"
        )
    classes = _check_labels(frame, target)
    train, valid = _split(frame, validation_set, seed)
    extractor = DeepFeatureExtractor(model, batch_size=batch_size, device=device, **extractor_options)
    preprocessing = Preprocessing.from_dict(extractor.provenance["preprocessing"])
    if options.resolution is not None:
        preprocessing = replace(preprocessing, resize=(options.resolution, options.resolution), crop=None)
        extractor_options = {**extractor_options, "preprocessing": preprocessing}
    plan = _plan_workers(options)
    batch = AUTO_BATCH if batch_size == "auto" else check_positive_int(batch_size, "batch_size")
    recipe = Recipe(epochs=int(options.epochs), batch_size=batch, learning_rate=float(options.learning_rate),
                    layers=options.layers if options.layers == "all" else int(options.layers))

    # Before any work: a foreign checkpoint is refused (and a resumed run without a seed takes the run's seed).
    storage, seed = _storage(options, recipe, classes, train.num_rows(), seed, given_seed is None)
    # The linear probe: the head's starting point, and the score fine-tuning has to beat.
    probe = linear_probe(
        train, target, image_column=image_column, model=model, feature_column=feature_column,
        l2_penalty=l2_penalty, max_iterations=max_iterations, validation_set=valid if valid is not None else None,
        class_weights=class_weights, seed=seed, verbose=verbose, batch_size=batch_size, device=device,
        **extractor_options,
    )
    if probe.classes != classes:  # the validation hold-out or undecodable images took a class's last rows
        missing = [c for c in classes if c not in probe.classes]
        raise InputError(
            f"no training image of class(es) {missing[:10]} is left after the validation hold-out and the "
            "undecodable images (see any RowFailureWarning); add images of them, or pass validation_set=None"
        )
    state_dict = load_weights(arch, extractor_options.get("weights"), sha256=extractor_options.get("weights_sha256"),
                              storage_options=extractor_options.get("storage_options")).state_dict
    state, history, workers = _train(
        train, valid, probe, arch, state_dict, recipe, options, plan, preprocessing, storage,
        image_column=image_column, target=target, seed=seed, verbose=verbose,
    )
    return _fine_tuned_model(
        probe, arch, state_dict, state, preprocessing, extractor_options,
        fine_tuning={
            "epochs": history,
            "recipe": {**recipe_dict(recipe), "augment": options.augment,
                       "resolution": list(preprocessing.output_size), "seed": seed},
            "linear_probe": {"training_accuracy": probe.classifier.training.get("training_accuracy"),
                             "validation_accuracy": probe.classifier.training.get("validation_accuracy")},
            "num_workers": workers,
            "use_gpu": plan["use_gpu"],
            "checkpoint": options.checkpoint,
            "training_time_s": time.perf_counter() - started,
        },
        batch_size=batch_size, device=device,
    )


def _check_labels(frame: Frame, target: str) -> list:
    """The sorted classes; refuses null labels, one class, or a class with fewer than 2 images."""
    labels = frame.select(target).to_arrow().column(target)
    if labels.null_count:
        raise InputError(
            f"target column {target!r} has {labels.null_count} null label(s); drop those rows first "
            f"(frame.dropna({target!r})) or give them a class"
        )
    counts = Counter(labels.to_pylist())
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise InputError(
            f"target column {target!r} has {'only one class (' + repr(only) + ')' if counts else 'no rows'}; "
            "a classifier needs images of at least two classes"
        )
    few = sorted((c for c, n in counts.items() if n < 2), key=str)
    if few:
        raise InputError(
            f"class(es) {few[:10]} of {target!r} have fewer than 2 images; fine-tuning needs at least 2 per "
            "class: add images of them, or drop those rows with frame.filter(...)"
        )
    return sorted(counts)


def _split(frame: Frame, validation_set: Any, seed: int) -> tuple[Any, Any]:
    """(training rows, validation rows or None), as the linear probe's "auto" rule holds out."""
    from framelab.toolkits.classifier.logistic_classifier import auto_validation_rows

    if isinstance(validation_set, str):
        if validation_set.lower() == "none":
            return frame, None
        if validation_set.lower() != "auto":
            raise InputError(f"validation_set must be 'auto', None or a Frame; got {validation_set!r}")
        num_rows = frame.num_rows()
        held = auto_validation_rows(num_rows)
        if held == 0:
            return frame, None
        train, valid = frame.random_split(1 - held / num_rows, seed=seed)
        return train, valid
    if validation_set is None:
        return frame, None
    return frame, check_frame(validation_set, "validation_set")


def plan_worker_shape(cpus: float, gpus: float, nodes: int, num_workers: int | str, use_gpu: bool) -> tuple[int, float]:
    """(workers, CPUs per worker): one worker per GPU, else per node, each node keeping CPUs for its feeders.

    On 2 CPUs that is one worker of 1.5 CPUs (two threads), and half a CPU for
    the two decode-and-augment tasks ahead of it.

    Example:
        >>> from framelab.toolkits.image_classifier.fine_tune import plan_worker_shape
        >>> plan_worker_shape(2, 0, 1, "auto", False), plan_worker_shape(2, 0, 2, "auto", False)
        ((1, 1.5), (2, 0.5))
    """
    if use_gpu:
        workers = int(gpus) if num_workers == "auto" else int(num_workers)
        return workers, 1.0
    workers = nodes if num_workers == "auto" else int(num_workers)
    free = cpus - FEEDING_CPUS_PER_NODE * nodes
    return workers, max(0.5, math.floor(2 * free / workers) / 2)


def _plan_workers(options: FineTuneOptions) -> dict:
    from framelab.platform.resources import cluster_facts, threads_for

    facts = cluster_facts()
    use_gpu = facts.gpus >= 1 if options.use_gpu == "auto" else options.use_gpu
    if use_gpu and facts.gpus < 1:
        raise InputError("use_gpu=True but the Ray cluster has no GPU; pass use_gpu='auto' (or False) to train on CPUs")
    workers, cpus = plan_worker_shape(facts.cpus, facts.gpus, facts.nodes, options.num_workers, use_gpu)
    if workers * cpus > facts.cpus or (use_gpu and workers > facts.gpus):
        raise InputError(
            f"num_workers={workers} needs {workers * cpus:g} CPUs{' and ' + str(workers) + ' GPUs' if use_gpu else ''}"
            f"; the cluster has {facts.cpus:g} CPUs and {facts.gpus:g} GPUs: pass num_workers='auto' or fewer"
        )
    return {"workers": workers, "cpus": cpus, "threads": threads_for(cpus), "use_gpu": use_gpu}


def _rows(frame: Frame, image_column: str, target: str) -> Any:
    """The Ray Dataset of (image, label, row number), materialised once: every epoch reads these blocks."""
    keep = [image_column, target] + (["path"] if "path" in frame.columns and image_column != "path" else [])
    return frame.select(*keep).add_row_number(ROW_COLUMN).materialize().to_ray()


def _train(train, valid, probe, arch, state_dict, recipe: Recipe, options: FineTuneOptions, plan: dict,
           preprocessing, storage: tuple, *, image_column: str, target: str, seed: int,
           verbose: bool) -> tuple[dict, list, int]:
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from framelab.platform.resources import FEEDER_CPUS, reclaim
    from framelab.toolkits.image_classifier.train_loop import read_checkpoint, train_worker

    classes = probe.classes
    rows = _rows(train, image_column, target)
    num_rows = rows.count()
    augmentation = Augmentation(preprocessing.output_size, interpolation=preprocessing.interpolation) \
        if options.augment else None
    feed = {"batch_format": "pyarrow", "num_cpus": FEEDER_CPUS["cpu"], "zero_copy_batch": True}
    common = {"image_column": image_column, "target": target, "classes": classes,
              "preprocessing": preprocessing, "seed": seed}
    # One pipeline per epoch, its augmentation seeded by the epoch: a resumed run sees the same images.
    datasets = {
        f"train_{e}": rows.map_batches(training_batch, fn_kwargs={**common, "augmentation": augmentation, "epoch": e},
                                       **feed)
        for e in range(recipe.epochs)
    }
    if valid is not None:
        datasets["validation"] = _rows(valid, image_column, target).map_batches(
            training_batch, fn_kwargs={**common, "augmentation": None, "epoch": 0}, **feed)
    workers = plan["workers"]
    per_worker = max(1, recipe.batch_size // workers)
    c = probe.classifier
    config = {
        "recipe": recipe_dict(recipe),
        "network": [ray.put((arch, state_dict))],
        "head": (c.mean, head_scale(c.scale), c.weights, c.bias),
        "mean": list(preprocessing.mean),
        "std": list(preprocessing.std),
        "threads": plan["threads"],
        "seed": seed,
        "steps_per_epoch": max(1, math.ceil(num_rows // workers / per_worker)),
        "has_validation": valid is not None,
        "verbose": verbose,
    }
    storage, filesystem, cleanup = storage
    if storage is None:
        storage = cleanup = tempfile.mkdtemp(prefix="framelab-fine-tune-")
    try:
        trainer = TorchTrainer(
            train_worker,
            train_loop_config=config,
            scaling_config=ray.train.ScalingConfig(
                num_workers=workers, use_gpu=plan["use_gpu"], resources_per_worker={"CPU": plan["cpus"]},
                placement_strategy="SPREAD",
            ),
            run_config=ray.train.RunConfig(
                name=_RUN_NAME, storage_path=storage, storage_filesystem=filesystem,
                failure_config=ray.train.FailureConfig(max_failures=MAX_FAILURES),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            ),
            datasets=datasets,
        )
        # Warm model actors (the probe's extractor) give their CPUs back, or the workers would wait on them.
        reclaim(cpus=workers * plan["cpus"], gpus=workers if plan["use_gpu"] else 0)
        try:
            result = trainer.fit()
        except Exception as exc:  # noqa: BLE001 - Ray Train wraps the workers' errors in its own
            raise _training_error(exc) from None
        if result.checkpoint is None:
            raise RuntimeError("fine-tuning finished without a checkpoint; see the workers' logs above")
        state, history = read_checkpoint(result.checkpoint)
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    return state, history, workers


def head_scale(scale: np.ndarray) -> np.ndarray:
    """The probe's feature scales, floored at a tenth of their median, for the network's head.

    The probe divides each feature by its spread on the training images; a
    feature almost constant there (one of 1,280 on 16 photos had a spread
    under 1e-3) then turns the backbone's smallest change into a huge logit:
    one clipped step at learning rate 0.001 took the loss from 0.55 to 6.4.
    A floor, like batch norm's epsilon, keeps every feature's gain sane.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.image_classifier.fine_tune import head_scale
        >>> head_scale(np.array([1e-6, 1.0, 2.0])).tolist()
        [0.1, 1.0, 2.0]
    """
    return np.maximum(scale, 0.1 * np.median(scale))


def _storage(options: FineTuneOptions, recipe: Recipe, classes: list, num_rows: int,
             seed: int, drawn_seed: bool) -> tuple[tuple[str | None, Any, str | None], int]:
    """Where Ray Train keeps checkpoints: the ``checkpoint`` URL (checked to belong to this call), else a temporary folder.

    Returns ((path or None, pyarrow filesystem or None for a local path, folder to remove afterwards or None),
    the seed): a seed drawn for this call gives way to the one the checkpoint's run used.
    """
    url = options.checkpoint
    if url is None:
        return (None, None, None), seed  # a temporary folder, made when training starts
    from framelab.frames.storage import filesystem

    fs, path = filesystem(url)
    fingerprint = {"recipe": recipe_dict(recipe), "classes": classes, "rows": num_rows, "seed": seed,
                   "augment": options.augment, "resolution": options.resolution}
    marker = f"{path.rstrip('/')}/{_FINGERPRINT}"
    if fs.exists(marker):
        with fs.open(marker, "r") as f:
            found = json.load(f)
        if drawn_seed and isinstance(found.get("seed"), int):
            seed = fingerprint["seed"] = found["seed"]
        if found != json.loads(json.dumps(fingerprint)):
            changed = sorted(k for k in fingerprint if json.loads(json.dumps(fingerprint)).get(k) != found.get(k))
            raise InputError(
                f"the checkpoint at {url!r} is of another fine-tuning run (its {', '.join(changed)} differ); "
                "pass a new checkpoint= URL, or the same data and options to resume that run"
            )
    else:
        fs.makedirs(path, exist_ok=True)
        with fs.open(marker, "w") as f:
            json.dump(fingerprint, f)
    if fs.protocol in ("file", "local") or "file" in (fs.protocol if isinstance(fs.protocol, tuple) else ()):
        return (path, None, None), seed
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return (path, PyFileSystem(FSSpecHandler(fs)), None), seed


def _training_error(exc: BaseException) -> BaseException:
    """An error in the workers, as the user's own error when it is one, else one line that says where to look."""
    from framelab.platform.remote_errors import user_error

    found = user_error(exc)
    if found is not None:
        return found
    text = str(exc).strip().splitlines()
    return RuntimeError(
        f"fine-tuning failed after {MAX_FAILURES} restarts from its last checkpoint: "
        f"{text[-1] if text else type(exc).__name__} (the workers' logs above say why)"
    )


def _fine_tuned_model(probe, arch, original: dict, state: dict, preprocessing, extractor_options: dict,
                      fine_tuning: dict, batch_size, device) -> Any:
    """The ImageClassifier over the fine-tuned network: a new extractor (safetensors) and the trained head."""
    from safetensors.torch import save

    prefix = "backbone.inner."
    backbone = {k[len(prefix):]: v.contiguous() for k, v in state.items() if k.startswith(prefix)}
    # The original head travels too, so the file is a whole network: any layer= can be read from it.
    head = arch.head + "."
    backbone.update({k: v.contiguous() for k, v in original.items() if k.startswith(head)})
    data = save(backbone)
    options = {k: v for k, v in extractor_options.items() if k not in ("weights", "weights_sha256", "storage_options")}
    options["preprocessing"] = preprocessing
    extractor = DeepFeatureExtractor.from_weights_data(
        arch.name, data, source=_WEIGHTS_SOURCE, batch_size=batch_size, device=device, **options
    )
    c = probe.classifier
    schema = pa.schema([extractor.output_field(probe.feature_column), pa.field(c.target, pa.string())])
    weights = state["head.weight"].double().numpy().T
    bias = state["head.bias"].double().numpy()
    classifier = LogisticClassifier(
        target=c.target, classes=c.classes, encoder=FeatureEncoder.plan(schema, c.target, [probe.feature_column]),
        mean=c.mean, scale=head_scale(c.scale), weights=weights, bias=bias,
        training={**c.training, "fine_tuned": True,
                  "weights_sha256": hashlib.sha256(data).hexdigest()},
    )
    return type(probe)(extractor, classifier, image_column=probe.image_column,
                           feature_column=probe.feature_column, fine_tuning=fine_tuning)
