"""Fine-tuning on one GPU, measured: framelab's Ray Train worker against a plain PyTorch DataLoader loop.

One script for a lent GPU machine, a few minutes: the bundled MobileNetV2 on
the 1,200 bundled Caltech-101 images at 224x224, batch 64, RandomResizedCrop +
flip, every layer trained, AMP (bf16 where the GPU has it, else fp16),
channels-last. Printed: training images/s of framelab (one worker, use_gpu),
of the plain loop (DataLoader with as many workers as the cores it leaves,
pinned memory, non-blocking copies), their ratio, and the model alone on
pre-made GPU tensors (the limit), with the fraction of it each reaches.
Timed after one warm-up epoch, with ``torch.cuda.synchronize()`` before each clock read.

    python benchmarks/fine_tune_gpu.py                 # 3 epochs each (1 warm-up)
    python benchmarks/fine_tune_gpu.py --epochs 5 --batch 128
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image

from framelab.platform.session import connect
from framelab.toolkits import datasets, image_classifier

CALTECH = Path(__file__).resolve().parents[1] / "toolkits" / "datasets" / "caltech101_subset"
WEIGHTS = next((Path(__file__).resolve().parents[1] / "toolkits" / "deep_features" / "weights").glob("*.pth"))
MEAN = STD = (128 / 255,) * 3


class Images(torch.utils.data.Dataset):
    def __init__(self, rows, transform):
        self.rows, self.transform = rows, transform

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, label = self.rows[i]
        with open(path, "rb") as f:
            return self.transform(Image.open(io.BytesIO(f.read())).convert("RGB")), label


def network(classes: int) -> torch.nn.Module:
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    net.classifier = torch.nn.Linear(1280, classes)
    return net.cuda().to(memory_format=torch.channels_last)


def amp_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_steps(net, batches, epochs: int) -> list[float]:
    """Images/s of each epoch over ``batches`` (a callable giving an iterable of (x, y) on the GPU)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    speeds = []
    for _ in range(epochs):
        net.train()
        torch.cuda.synchronize()
        t0, n = time.perf_counter(), 0
        for x, y in batches():
            with torch.autocast("cuda", dtype=amp_dtype()):
                loss = loss_fn(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        torch.cuda.synchronize()
        speeds.append(n / (time.perf_counter() - t0))
    return speeds


def plain(rows, args) -> list[float]:
    from torchvision import transforms as T

    augment = T.Compose([T.RandomResizedCrop(224, scale=(0.25, 1.0)), T.RandomHorizontalFlip(),
                         T.PILToTensor()])
    loader = torch.utils.data.DataLoader(
        Images(rows, augment), batch_size=args.batch, shuffle=True, drop_last=True,
        num_workers=max(1, (os.cpu_count() or 2) - 2), pin_memory=True, persistent_workers=True,
    )
    mean = torch.tensor(MEAN, device="cuda").view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device="cuda").view(1, 3, 1, 1) * 255
    net = network(len({c for _, c in rows}))

    def batches():
        for x, y in loader:
            x = x.cuda(non_blocking=True).float().sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)
            yield x, y.cuda(non_blocking=True)

    return train_steps(net, batches, args.epochs)


def model_only(classes: int, args) -> float:
    net = network(classes)
    x = torch.randn(args.batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (args.batch,), device="cuda")
    steps = 1200 // args.batch
    return statistics.median(train_steps(net, lambda: [(x, y)] * steps, 3)[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a GPU"

    connect()
    folders = sorted(p for p in CALTECH.iterdir() if p.is_dir())
    labels = {f.name: i for i, f in enumerate(folders)}
    rows = [(str(p), labels[f.name]) for f in folders for p in sorted(f.glob("*.jpg"))]
    photos = datasets.caltech101().materialize()

    started = time.perf_counter()
    model = image_classifier.create(photos, "label", fine_tune=True, epochs=args.epochs, batch_size=args.batch,
                                    use_gpu=True, validation_set=None, seed=0, verbose=False)
    framelab_wall = time.perf_counter() - started
    mine = [e["images_per_second"] for e in model.training["epochs"]][1:]
    theirs = plain(rows, args)[1:]
    limit = model_only(len(folders), args)
    ratios = [a / b for a, b in zip(mine, theirs)]
    gpu = torch.cuda.get_device_name()
    print(f"\n{len(rows)} Caltech images, 224x224, batch {args.batch}, MobileNetV2 all layers, AMP {amp_dtype()}, "
          f"channels-last; {gpu}, {os.cpu_count()} cores; epochs after 1 warm-up: {len(mine)}\n")
    print("| work | images/s (median) | fraction of model-only |")
    print("|---|---|---|")
    print(f"| framelab fine-tune (1 Ray Train worker) | {statistics.median(mine):.0f} | "
          f"{statistics.median(mine) / limit:.2f} |")
    print(f"| plain DataLoader loop | {statistics.median(theirs):.0f} | {statistics.median(theirs) / limit:.2f} |")
    print(f"| model alone on GPU tensors (limit) | {limit:.0f} | 1.00 |")
    print(f"\nframelab / plain: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}); "
          f"framelab wall time {framelab_wall:.0f} s including the probe and Ray Train's start-up; "
          f"test accuracy is benchmarks/fine_tune.py's business")


if __name__ == "__main__":
    main()
