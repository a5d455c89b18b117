"""Deep features on one GPU: framelab's model stage against a plain PyTorch loop and the model alone.

Self-contained so it runs on a bare GPU box from the repo root (torch,
torchvision, numpy, pyarrow, pillow; no ray, no polars, framelab not
installed)::

    python benchmarks/deep_features_gpu.py --images 2000

It measures, on the same Caltech JPEGs (cycled to ``--images``) and the bundled
MobileNetV2 weights:

1. framelab's model stage (``FeatureActor`` built as
   ``DeepFeatureExtractor.transform`` builds it) on batches decoded beforehand
   by framelab's own decode stage (``decode_batch``);
2. a plain PyTorch loop: DataLoader workers decoding the same bytes,
   torchvision transforms, fp16 autocast, channels-last, batch 256;
3. the model alone on normalised tensors already on the device: the limit.

One warm-up, then interleaved timed rounds (1 2 3, 1 2 3, ...); median [min,
max]. It also checks framelab's features against a float32 plain forward and,
when the coral photos are there, ImageNet top-1. ``--simulate-missing`` hides
ray and polars so the placeholder path runs on a machine that has them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"
CORAL = REPO / "tests" / "data" / "coral_test_images"
_PLACEHOLDER = "__framelab_benchmark_placeholder__"


# ------------------------------------------------------------------ environment
def _placeholder_module(name: str, submodules: tuple[str, ...] = ()) -> types.ModuleType:
    """A module whose every public attribute is an inert class, enough for import-time references."""
    module = types.ModuleType(name)
    setattr(module, _PLACEHOLDER, True)
    made: dict[str, type] = {}

    def __getattr__(attr: str):  # PEP 562
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr not in made:
            made[attr] = type(attr, (), {"__module__": name, "__init__": lambda self, *a, **k: None})
        return made[attr]

    module.__getattr__ = __getattr__
    sys.modules[name] = module
    for sub in submodules:
        setattr(module, sub, _placeholder_module(f"{name}.{sub}"))
    return module


def _install_placeholders() -> list[str]:
    """Placeholders for polars and ray, only where the real package cannot be imported."""
    installed = []
    try:
        import polars  # noqa: F401
    except ImportError:
        _placeholder_module("polars", ("datatypes", "exceptions", "selectors", "type_aliases"))
        installed.append("polars")
    try:
        import ray  # noqa: F401
    except ImportError:
        ray = _placeholder_module("ray", ("data", "util", "exceptions"))
        # FeatureActor reads its network with ray.get(config.network[0]); without Ray the
        # "object ref" is the object itself.
        ray.put = lambda value, **_: value
        ray.get = lambda ref, **_: ref
        ray.is_initialized = lambda: False
        installed.append("ray")
    return installed


def _make_framelab_importable() -> str:
    """Import framelab as installed, else from this checkout through a temporary symlinked package."""
    try:
        import framelab.frames  # noqa: F401

        return "installed"
    except ImportError:
        for name in [m for m in sys.modules if m == "framelab" or m.startswith("framelab.")]:
            del sys.modules[name]
    root = Path(tempfile.mkdtemp(prefix="framelab_shim_"))
    package = root / "framelab"
    package.mkdir()
    (package / "__init__.py").write_text('"""framelab from a checkout (benchmark shim)."""\n')
    for sub in ("frames", "toolkits", "platform"):
        (package / sub).symlink_to(REPO / sub, target_is_directory=True)
    sys.path.insert(0, str(root))
    import framelab.frames  # noqa: F401

    return f"shim at {root}"


# ------------------------------------------------------------------------ data
def _image_bytes(n: int) -> list[bytes]:
    files = sorted(p for p in CALTECH.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images under {CALTECH}")
    data = [p.read_bytes() for p in files]
    return [data[i % len(data)] for i in range(n)]


def _decode_all(tables, preprocessing, workers: int):
    """framelab's decode stage over every batch: once, in a process pool, reused by every round."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial
    from multiprocessing import get_context

    from framelab.toolkits.deep_features.decode import decode_batch

    fn = partial(decode_batch, column="image", preprocessing=preprocessing)
    # Decode before CUDA is touched, so forking is safe and children inherit the shim.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        return list(pool.map(fn, tables))


class _BytesDataset:
    def __init__(self, data: list[bytes], transform):
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        import io

        from PIL import Image

        return self.transform(Image.open(io.BytesIO(self.data[i])).convert("RGB"))


def _torchvision_transform(p):
    from torchvision import transforms as T

    steps = [T.Resize(p.resize)]
    if p.crop is not None:
        steps.append(T.CenterCrop(p.crop))
    steps += [T.ToTensor(), T.Normalize(p.mean, p.std)]
    return T.Compose(steps)


# ------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--batch", type=int, default=256, help="batch of the plain loop and the model alone")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    parser.add_argument("--decode-procs", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--coral", default=None, help="folder of the coral photos + expected_top1.csv")
    parser.add_argument("--simulate-missing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.simulate_missing:
        sys.modules["polars"] = None
        sys.modules["ray"] = None
    placeholders = _install_placeholders()
    how = _make_framelab_importable()

    import numpy as np
    import pyarrow as pa
    import torch

    from framelab.toolkits.deep_features import DeepFeatureExtractor
    from framelab.toolkits.deep_features.decode import (
        PIXELS_COLUMN,
        decode_batch,
        pixels_from_arrow,
    )
    from framelab.toolkits.deep_features.extractor import _AUTO_BATCH
    from framelab.toolkits.deep_features.inference import FeatureActor, StageConfig
    from framelab.toolkits.deep_features.network import feature_network

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device == "cuda"
    cpu_threads = torch.get_num_threads()
    print(f"# torch {torch.__version__}, python {sys.version.split()[0]}, framelab: {how}, "
          f"placeholders: {', '.join(placeholders) or 'none'}")

    # ---- what transform() resolves: the same extractor, weights, preprocessing, field
    extractor = DeepFeatureExtractor("mobilenet_v2", device=device)
    r = extractor._resolve()
    p = r.preprocessing
    print(f"# model {r.model_name} layer {r.layer} dim {r.dim}, weights sha256 {r.weights_sha256[:12]}, {p}")

    data = _image_bytes(args.images)
    stage_batch = _AUTO_BATCH[device]  # transform's Ray Data batch for batch_size="auto"
    tables = [
        pa.table({"image": pa.array(data[i : i + stage_batch], pa.binary())})
        for i in range(0, len(data), stage_batch)
    ]

    # ---- framelab decode stage: one process rate, then all batches through a pool
    sample = tables[0]
    t0 = time.perf_counter()
    decode_batch(sample, column="image", preprocessing=p)
    decode_rate = len(sample) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    decoded = _decode_all(tables, p, args.decode_procs)
    if cuda:  # transform() hands a GPU actor _GPU_STAGE_ROWS rows a call (Ray Data joins decoded blocks)
        from framelab.toolkits.deep_features.extractor import _GPU_STAGE_ROWS

        step = max(1, _GPU_STAGE_ROWS // stage_batch)
        decoded = [pa.concat_tables(decoded[i : i + step]).combine_chunks() for i in range(0, len(decoded), step)]
    pool_rate = len(data) / (time.perf_counter() - t0)
    bad = sum(t.column(PIXELS_COLUMN).null_count for t in decoded)
    print(f"# framelab decode_batch: {decode_rate:,.0f} images/s in one process; "
          f"{pool_rate:,.0f} images/s with {args.decode_procs} processes (untimed below); {bad} undecodable")

    if cuda:  # after the fork above: this initialises CUDA
        print(f"# device: {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, cudnn "
              f"{torch.backends.cudnn.version()}, {os.cpu_count()} CPUs")
    else:
        print(f"# device: cpu ({cpu_threads} torch threads, {os.cpu_count()} CPUs)")

    # ---- framelab model stage, built as transform() builds it (GPU pool: 0.25 CPU per actor)
    import ray

    if not getattr(ray, _PLACEHOLDER, False) and not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)  # real Ray: ray.put needs a session
    config = StageConfig(
        network=[ray.put((r.model, r.state_dict))],
        layer=extractor.layer,
        preprocessing=p,
        output_field=extractor.output_field("deep_features"),
        pixels_column=PIXELS_COLUMN,
        device=device,
        num_cpus=0.25 if cuda else float(cpu_threads),
        precision="float16" if cuda else "float32",
        batch_size=None if cuda else stage_batch,
    )
    actor = FeatureActor(config)
    print(f"# FeatureActor micro-batch {actor.batch_size}, precision {config.precision}, "
          f"{torch.get_num_threads()} torch thread(s) after the actor set them")
    torch.set_num_threads(cpu_threads)  # the actor's 1-thread setting is for a Ray worker, not this driver

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def run_framelab():
        return [actor(t) for t in decoded]

    # ---- the same network for the plain loop and the model alone
    net, _ = feature_network(r.model, r.state_dict, extractor.layer)
    net = net.eval().to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.float16) if cuda else None

    def forward(x):
        if autocast is None:
            return net(x)
        with torch.autocast("cuda", dtype=torch.float16):
            return net(x)

    transform = _torchvision_transform(p)
    loader = torch.utils.data.DataLoader(
        _BytesDataset(data, transform),
        batch_size=args.batch,
        num_workers=args.workers,
        pin_memory=cuda,
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers > 0 else None,
    )

    def run_plain():
        outs = []
        with torch.inference_mode():
            for x in loader:
                x = x.to(device, non_blocking=True)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                outs.append(forward(x).float().cpu())
        return outs

    # Model alone: framelab's decoded pixels, normalised once, resident on the device.
    mean = torch.tensor(p.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(p.std, device=device).view(1, 3, 1, 1)
    all_pixels = np.concatenate([pixels_from_arrow(t.column(PIXELS_COLUMN), p.output_size)[0] for t in decoded])
    resident = []
    for i in range(0, len(all_pixels), args.batch):
        x = torch.from_numpy(all_pixels[i : i + args.batch]).to(device).permute(0, 3, 1, 2).float()
        x = ((x / 255 - mean) / std).contiguous(memory_format=torch.channels_last if cuda else torch.contiguous_format)
        resident.append(x)

    def run_model():
        with torch.inference_mode():
            return [forward(x) for x in resident]

    works = [("framelab model stage (pre-decoded)", run_framelab), ("plain PyTorch loop (end-to-end)", run_plain),
             ("model alone (tensors on device)", run_model)]
    rates: dict[str, list[float]] = {name: [] for name, _ in works}
    for round_ in range(args.rounds + 1):  # round 0 is the warm-up
        for name, fn in works:
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            elapsed = time.perf_counter() - t0
            if round_:
                rates[name].append(len(data) / elapsed)

    def summary(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"

    fl, pl_, mo = (rates[name] for name, _ in works)
    print()
    print(f"## deep features, {len(data)} images, {device}: median [min, max] of {args.rounds} interleaved rounds")
    print()
    print("| work | images/s | framelab / this |")
    print("|---|---|---|")
    for name, values in rates.items():
        ratio = summary([a / b for a, b in zip(fl, values)], ".2f")
        print(f"| {name} | {summary(values, ',.0f')} | {ratio} |")
    print()
    frac = statistics.median(a / b for a, b in zip(fl, mo))
    print(f"framelab stage = {frac:.2f} of model-only throughput (target >= 0.80: "
          f"{'MET' if frac >= 0.8 else 'NOT MET'}); framelab stage / plain loop = "
          f"{statistics.median(a / b for a, b in zip(fl, pl_)):.2f}; decode (not in the stage figure) "
          f"{decode_rate:,.0f} images/s per process")

    # ---- correctness: framelab features vs a float32 plain forward on the first 64 images
    n_check = min(64, len(data))
    got = run_framelab_first(actor, decoded, n_check)
    ref_net, _ = feature_network(r.model, r.state_dict, extractor.layer)
    ref_net = ref_net.eval().to(device)
    with torch.inference_mode():
        x = torch.stack([_BytesDataset(data, transform)[i] for i in range(n_check)]).to(device)
        ref = ref_net(x).float().cpu().numpy()
    diff = float(np.abs(got - ref).max())
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
    print(f"features vs float32 plain forward ({n_check} images): max |diff| {diff:.4g}, "
          f"cosine min {cos.min():.5f} mean {cos.mean():.5f} -> {'OK' if cos.min() >= 0.99 else 'MISMATCH'}")

    coral = Path(args.coral) if args.coral else (CORAL if CORAL.is_dir() else None)
    if coral is None:
        print("coral top-1: skipped (pass --coral DIR)")
    else:
        _coral_top1(coral, r, transform, device)


def run_framelab_first(actor, decoded, n: int):
    """The first ``n`` rows' features from framelab's model stage, as float32 numpy."""
    import numpy as np

    from framelab.frames.vectors import vectors_to_numpy

    out = []
    for table in decoded:
        out.append(vectors_to_numpy(actor(table).column("deep_features")))
        if sum(len(o) for o in out) >= n:
            break
    return np.concatenate(out)[:n].astype(np.float32)


def _coral_top1(folder: Path, r, transform, device: str) -> None:
    """ImageNet top-1 of the full float32 network on the coral photos, against expected_top1.csv."""
    import csv

    import torch
    from PIL import Image

    if not (folder / "expected_top1.csv").is_file():
        print(f"coral top-1: skipped ({folder} has no expected_top1.csv)")
        return
    full = r.model.build()
    full.load_state_dict(r.state_dict)
    full = full.eval().to(device)
    with open(folder / "expected_top1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    hits = 0
    with torch.inference_mode():
        for row in rows:
            x = transform(Image.open(folder / row["file"]).convert("RGB")).unsqueeze(0).to(device)
            hits += int(full(x).argmax(1).item()) == int(row["torch_stock_top1_index"])
    print(f"coral top-1 ({folder}): {hits}/{len(rows)} match torch_stock_top1_index")


if __name__ == "__main__":
    main()
