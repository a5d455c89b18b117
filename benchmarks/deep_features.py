"""Deep features end to end: framelab vs a plain PyTorch loop vs the model alone, same run.

framelab:    deep_features.extract on a Frame of encoded JPEG bytes (decode tasks + model actors on Ray).
plain loop:  the same bytes through a torch DataLoader with workers (PIL decode, torchvision
             Resize((224, 224)) / ToTensor / Normalize), the same model and weights, one process.
model alone: the same model on pre-decoded, pre-normalised tensors: the limit for this machine.

Rounds are interleaved (framelab, plain, model) after one warm-up round; the table gives the median of
the per-round ratios with min and max. The warm-up framelab call is reported as the cold start (it starts
the model actors, which then stay warm for the session). Outputs are compared (max |difference| of the
features) so both sides provably did the same work. Last, the latency of features for 2 images in the
warm session (median of 5): what a person waits for when a model predicts on a couple of new images.

    python benchmarks/deep_features.py --device cpu --images 600
    python benchmarks/deep_features.py --device cuda --images 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

from framelab.frames import Frame
from framelab.frames.vectors import vectors_to_numpy
from framelab.platform.session import connect, session_info
from framelab.toolkits import deep_features
from framelab.toolkits.deep_features.weights import BUNDLED_DIR

CALTECH = Path(__file__).resolve().parents[1] / "toolkits" / "datasets" / "caltech101_subset"
WEIGHTS = BUNDLED_DIR / "mobilenet_v2_1.0_224_quant_dequantized_torchvision.pth"
MEAN = STD = [128 / 255] * 3


def load_images(n: int) -> list[bytes]:
    files = sorted(CALTECH.glob("*/*.jpg"))
    return [files[i % len(files)].read_bytes() for i in range(n)]


def plain_model(device: str) -> torch.nn.Module:
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    model.classifier = torch.nn.Identity()
    model = model.eval()
    if device == "cuda":
        model = model.to("cuda", memory_format=torch.channels_last)
    return model


class BytesDataset(torch.utils.data.Dataset):
    def __init__(self, data: list[bytes]):
        self.data = data
        self.transform = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        import io

        return self.transform(Image.open(io.BytesIO(self.data[i])).convert("RGB"))


def forward(model: torch.nn.Module, x: torch.Tensor, device: str) -> torch.Tensor:
    if device == "cuda":
        x = x.to("cuda", non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16):
            return model(x).float()
    return model(x)


def run_framelab(frame: Frame, device: str) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = deep_features.extract(frame, image_column="data", device=device).to_arrow()
    seconds = time.perf_counter() - start
    order = np.argsort(out.column("id").to_numpy())
    return seconds, vectors_to_numpy(out.column("deep_features"))[order]


def run_plain(data: list[bytes], model, device: str, batch: int, workers: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        BytesDataset(data), batch_size=batch, num_workers=workers, pin_memory=device == "cuda"
    )
    outs = []
    with torch.inference_mode():
        for x in loader:
            outs.append(forward(model, x, device).cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cat(outs).numpy()


def run_model_only(tensors: torch.Tensor, model, device: str, batch: int) -> float:
    if device == "cuda":
        tensors = tensors.to("cuda")
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tensors), batch):
            forward(model, tensors[i : i + batch], device)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--pairs", type=int, default=3, help="timed rounds after the warm-up")
    parser.add_argument("--batch-size", type=int, default=32, help="the plain loop's batch size")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU count)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine has no CUDA GPU visible to torch")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)

    connect()  # Ray start-up stays outside every timed region
    info = session_info()
    data = load_images(args.images)
    frame = Frame({"id": np.arange(len(data)), "data": pa.array(data, pa.binary())})
    model = plain_model(args.device)
    dataset = BytesDataset(data)
    tensors = torch.stack([dataset[i] for i in range(len(data))])

    cold, feats = run_framelab(frame, args.device)  # warm-up round; its framelab call is the cold start
    _, plain_feats = run_plain(data, model, args.device, args.batch_size, workers)
    run_model_only(tensors, model, args.device, args.batch_size)
    max_diff = float(np.abs(feats - plain_feats).max())

    rounds = []
    for i in range(args.pairs):
        f, _ = run_framelab(frame, args.device)
        p, _ = run_plain(data, model, args.device, args.batch_size, workers)
        m = run_model_only(tensors, model, args.device, args.batch_size)
        rounds.append((f, p, m))
        print(f"round {i + 1}: framelab {f:.2f}s  plain {p:.2f}s  model alone {m:.2f}s", flush=True)

    two = Frame({"id": np.arange(2), "data": pa.array(data[:2], pa.binary())})
    latencies = []
    for _ in range(5):
        start = time.perf_counter()
        deep_features.extract(two, image_column="data", device=args.device).to_numpy("deep_features")
        latencies.append(time.perf_counter() - start)

    n = len(data)
    ratios = [p / f for f, p, _ in rounds]  # framelab throughput / plain throughput
    limits = [m / f for f, _, m in rounds]  # framelab throughput / model-alone throughput
    med = statistics.median
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none"
    print()
    print("| work | images | framelab img/s | plain loop img/s | framelab / plain (min-max) "
          "| model alone img/s | framelab / model alone | cold start s | machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| MobileNetV2 features, {args.device} | {n} | {n / med([r[0] for r in rounds]):.1f} "
        f"| {n / med([r[1] for r in rounds]):.1f} | {med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
        f"| {n / med([r[2] for r in rounds]):.1f} | {med(limits):.2f} | {cold:.1f} "
        f"| {os.cpu_count()} cores, Ray {info.num_cpus:g} CPU, GPU {gpu} |"
    )
    print(
        f"\nplain loop: DataLoader batch {args.batch_size}, {workers} workers, torch threads "
        f"{torch.get_num_threads()}; framelab: its own actor pool (see deep_features.extractor); "
        f"max |framelab - plain| feature difference {max_diff:.2e}"
    )
    print(
        f"warm session, features for 2 images: {statistics.median(latencies):.3f} s median "
        f"[{min(latencies):.3f}, {max(latencies):.3f}] of 5 (cold start above: {cold:.1f} s)"
    )


if __name__ == "__main__":
    main()
