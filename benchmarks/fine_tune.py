"""Fine-tuning, measured: framelab's one call against a plain PyTorch DataLoader loop with the same recipe.

Both fine-tune the bundled MobileNetV2 on the bundled Caltech-101 subset, on
the same fixed split (per class, the first ``--train`` images train and the
next ``--test`` test), with the same seed, resolution, batch size, epochs and
recipe: head from a linear probe on the frozen features (StandardScaler +
logistic regression, L2 0.01 in Turi's scaling), then SGD (Nesterov momentum
0.9) with the head at the learning rate and the backbone at a tenth, a cosine
schedule, weight decay 1e-4 on weights, label smoothing 0.1, gradient norm
clipped at 1, feature scales floored at a tenth of their median, batch norm frozen, RandomResizedCrop(scale 0.25-1) + flip.
The plain loop is written as a competent user would write it, from
torchvision and scikit-learn alone (nothing of framelab's training code), with
a DataLoader of one worker process and torch on the threads framelab's worker gets.

Printed: test accuracy of the linear probe, framelab, the plain loop (and,
with ``--head-only``, framelab with layers=0), and training images/s of each
epoch of both, with the per-epoch ratios (median, min, max).

    python benchmarks/fine_tune.py                                  # 5 classes x (20 train + 10 test), 3 epochs
    python benchmarks/fine_tune.py --classes 20 --train 40 --test 20 --epochs 5 --resolution 224
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from framelab.frames import Frame
from framelab.platform.session import connect
from framelab.toolkits import image_classifier
from framelab.toolkits.deep_features import Preprocessing
from framelab.toolkits.image_classifier.fine_tune import plan_worker_shape

CALTECH = Path(__file__).resolve().parents[1] / "toolkits" / "datasets" / "caltech101_subset"
WEIGHTS = next((Path(__file__).resolve().parents[1] / "toolkits" / "deep_features" / "weights").glob("*.pth"))
MEAN = STD = (128 / 255,) * 3


def split(classes: int, train: int, test: int) -> tuple[list, list]:
    folders = sorted(p for p in CALTECH.iterdir() if p.is_dir())[:classes]
    tr, te = [], []
    for folder in folders:
        files = sorted(folder.glob("*.jpg"))
        tr += [(str(f), folder.name) for f in files[:train]]
        te += [(str(f), folder.name) for f in files[train:train + test]]
    return tr, te


# ------------------------------------------------------------------ framelab
def frame_of(rows: list) -> Frame:
    from framelab.frames import read_images

    frame = read_images([p for p, _ in rows], label_from="folder")
    return frame.materialize()


def run_framelab(train: Frame, test: Frame, args, layers="all") -> dict:
    started = time.perf_counter()
    model = image_classifier.create(
        train, "label", fine_tune=True, epochs=args.epochs, resolution=args.resolution, batch_size=args.batch,
        layers=layers, seed=args.seed, validation_set=None, verbose=False,
    )
    wall = time.perf_counter() - started
    return {"accuracy": model.evaluate(test)["accuracy"], "wall_s": wall,
            "images_per_s": [e["images_per_second"] for e in model.training["epochs"]]}


def run_probe(train: Frame, test: Frame, args) -> float:
    prep = Preprocessing(resize=(args.resolution,) * 2, crop=None, mean=MEAN, std=STD)
    model = image_classifier.create(train, "label", preprocessing=prep, seed=args.seed, validation_set=None,
                                    verbose=False)
    return model.evaluate(test)["accuracy"]


# ---------------------------------------------------------------- plain loop
class Images(torch.utils.data.Dataset):
    def __init__(self, rows, classes, transform):
        self.rows, self.index, self.transform = rows, {c: i for i, c in enumerate(classes)}, transform

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, label = self.rows[i]
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read())).convert("RGB")
        return self.transform(img), self.index[label]


class Standardize(torch.nn.Module):
    def __init__(self, mean, scale):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.scale


def run_plain(train_rows: list, test_rows: list, args, threads: int) -> dict:
    from torchvision import transforms as T

    torch.manual_seed(args.seed)
    torch.set_num_threads(threads)
    classes = sorted({c for _, c in train_rows})
    size = (args.resolution, args.resolution)
    plain = T.Compose([T.Resize(size), T.ToTensor(), T.Normalize(MEAN, STD)])
    augment = T.Compose([T.RandomResizedCrop(size, scale=(0.25, 1.0)), T.RandomHorizontalFlip(),
                         T.ToTensor(), T.Normalize(MEAN, STD)])
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    net.classifier = torch.nn.Identity()
    started = time.perf_counter()

    def features(rows):
        loader = torch.utils.data.DataLoader(Images(rows, classes, plain), batch_size=args.batch, num_workers=1)
        net.eval()
        with torch.inference_mode():
            out = [(net(x), y) for x, y in loader]
        return torch.cat([o[0] for o in out]).numpy(), torch.cat([o[1] for o in out]).numpy()

    x, y = features(train_rows)
    scaler = StandardScaler().fit(x)
    probe = LogisticRegression(C=1 / (2 * 0.01), max_iter=1000).fit(scaler.transform(x), y)
    w = probe.coef_ if len(classes) > 2 else np.vstack([-probe.coef_ / 2, probe.coef_ / 2])
    b = probe.intercept_ if len(classes) > 2 else np.array([-probe.intercept_[0] / 2, probe.intercept_[0] / 2])
    # The head stays in the probe's standardised space (as framelab's does): SGD steps mean the same there.
    head = torch.nn.Linear(x.shape[1], len(classes))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(w, dtype=torch.float32))
        head.bias.copy_(torch.tensor(b, dtype=torch.float32))
    # Scales floored at a tenth of their median, as framelab's recipe does (a near-constant feature's gain).
    standardize = Standardize(scaler.mean_, np.maximum(scaler.scale_, 0.1 * np.median(scaler.scale_)))
    model = torch.nn.Sequential(net, standardize, head)

    groups = [
        {"params": [head.weight], "lr": args.lr, "weight_decay": 1e-4},
        {"params": [head.bias], "lr": args.lr, "weight_decay": 0.0},
        {"params": [p for p in net.parameters() if p.ndim > 1], "lr": args.lr / 10, "weight_decay": 1e-4},
        {"params": [p for p in net.parameters() if p.ndim <= 1], "lr": args.lr / 10, "weight_decay": 0.0},
    ]
    for g in groups:
        g["base"] = g["lr"]
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    loader = torch.utils.data.DataLoader(Images(train_rows, classes, augment), batch_size=args.batch, shuffle=True,
                                         num_workers=1, persistent_workers=True)
    total, step, speeds = args.epochs * len(loader), 0, []
    for _ in range(args.epochs):
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        t0, n = time.perf_counter(), 0
        for xb, yb in loader:
            for g in opt.param_groups:
                g["lr"] = g["base"] * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step, n = step + 1, n + len(yb)
        speeds.append(n / (time.perf_counter() - t0))
    wall = time.perf_counter() - started
    x_test, y_test = features(test_rows)
    with torch.inference_mode():
        accuracy = float((head(standardize(torch.tensor(x_test))).argmax(1).numpy() == y_test).mean())
    return {"accuracy": accuracy, "wall_s": wall, "images_per_s": speeds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--train", type=int, default=20, help="training images per class")
    parser.add_argument("--test", type=int, default=10, help="test images per class")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-only", action="store_true", help="also framelab with layers=0 (the head alone)")
    args = parser.parse_args()

    connect()
    import ray

    resources = ray.cluster_resources()
    _, cpus = plan_worker_shape(resources.get("CPU", 1), 0, 1, "auto", False)
    threads = max(1, int(round(cpus)))
    train_rows, test_rows = split(args.classes, args.train, args.test)
    train, test = frame_of(train_rows), frame_of(test_rows)
    probe = run_probe(train, test, args)
    # framelab and the plain loop alternate: framelab first (it pays Ray Train's start-up, reported apart).
    mine = run_framelab(train, test, args)
    plain = run_plain(train_rows, test_rows, args, threads)
    head_only = run_framelab(train, test, args, layers=0) if args.head_only else None

    ratios = [a / b for a, b in zip(mine["images_per_s"], plain["images_per_s"])]
    print(f"\nCaltech-101 subset: {args.classes} classes x ({args.train} train + {args.test} test) images, "
          f"{args.resolution}x{args.resolution}, {args.epochs} epochs, batch {args.batch}, lr {args.lr} "
          f"(backbone /10), seed {args.seed}; {os.cpu_count()} cores, no GPU, torch threads {threads}\n")
    print("| model | test accuracy | training images/s per epoch | wall s |")
    print("|---|---|---|---|")
    print(f"| linear probe (framelab, frozen features) | {probe:.3f} | - | - |")
    print(f"| framelab fine-tune (1 Ray Train worker) | {mine['accuracy']:.3f} | "
          f"{', '.join(f'{v:.1f}' for v in mine['images_per_s'])} | {mine['wall_s']:.0f} |")
    print(f"| plain PyTorch DataLoader loop | {plain['accuracy']:.3f} | "
          f"{', '.join(f'{v:.1f}' for v in plain['images_per_s'])} | {plain['wall_s']:.0f} |")
    if head_only is not None:
        print(f"| framelab, head only (layers=0) | {head_only['accuracy']:.3f} | "
              f"{', '.join(f'{v:.1f}' for v in head_only['images_per_s'])} | {head_only['wall_s']:.0f} |")
    print(f"\nframelab / plain training images/s, per epoch: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); accuracy difference "
          f"{100 * (mine['accuracy'] - plain['accuracy']):+.1f} points; vs the probe "
          f"{100 * (mine['accuracy'] - probe):+.1f} points")


if __name__ == "__main__":
    main()
