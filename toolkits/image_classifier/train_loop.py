"""The worker side of fine-tuning: the network, the recipe, and the loop each Ray Train worker runs.

The network is the extractor's backbone followed by the linear probe's head,
kept in the probe's standardised feature space, so the first step starts from
a model that is already as good as the probe. Its inputs are standardised
over 1,280 dimensions or more, so one step of learning rate ``lr`` moves a
logit by about ``lr * dims``: the head's default rate is 0.001, not the 0.01
a fresh head gets (0.01 took a converged probe from 100% to 62% in a step).
The recipe: SGD with Nesterov
momentum, a smaller learning rate for the backbone than for the head, a cosine
schedule over every step of the run, weight decay on weights only (not biases
or batch norm), label smoothing, and batch norm kept in inference mode (the
bundled MobileNetV2's batch norms are identity-plus-bias, and small per-worker
batches would wreck running statistics).

Every epoch ends with a checkpoint (model, optimiser, the epochs' metrics) and
one ``ray.train.report``; a restarted worker group, or the same call run again
after a crash, starts after the last finished epoch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

# Epochs without a better validation accuracy before training stops early.
PATIENCE = 3
_STATE_FILE = "state.pt"
_PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning recipe: what each option of ``image_classifier.create(..., fine_tune=True)`` sets.

    Example:
        >>> from framelab.toolkits.image_classifier.train_loop import Recipe
        >>> Recipe(epochs=3, batch_size=32).backbone_lr_ratio
        0.1
    """

    epochs: int
    batch_size: int  # images per step, over all workers
    learning_rate: float = 0.001  # the head's; the backbone's is this times backbone_lr_ratio
    backbone_lr_ratio: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    # The probe standardises by each feature's spread, and a feature nearly constant on the training
    # images gets a huge gain: one unclipped step through it took a probe at 100% to 81% accuracy.
    max_grad_norm: float = 1.0
    layers: int | str = "all"  # "all", or how many of the backbone's last blocks train (0: the head alone)
    early_stopping: bool = True


class FineTuneNet(torch.nn.Module):
    """Backbone, then the probe's standardisation and a linear head: logits for every class.

    A two-class probe scores only the second class; its logits are (0, z),
    which gives the same softmax as the probe's sigmoid.
    """

    def __init__(self, backbone: torch.nn.Module, mean: np.ndarray, scale: np.ndarray,
                 weights: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(np.array(mean), dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(np.array(scale), dtype=torch.float32))
        self.head = torch.nn.Linear(weights.shape[0], weights.shape[1])
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(np.array(weights.T), dtype=torch.float32))
            self.head.bias.copy_(torch.tensor(np.array(bias), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x).float()
        z = self.head((features - self.mean) / self.scale)
        if z.shape[1] == 1:
            z = torch.cat([torch.zeros_like(z), z], dim=1)
        return z


def backbone_blocks(net: torch.nn.Module, head: str) -> list[tuple[str, torch.nn.Module]]:
    """The backbone's blocks in order, the unit of ``layers=N``: top-level children, a Sequential opened up.

    Example:
        >>> from framelab.toolkits.deep_features import architecture
        >>> from framelab.toolkits.image_classifier.train_loop import backbone_blocks
        >>> blocks = backbone_blocks(architecture("mobilenet_v2").build(), "classifier")
        >>> len(blocks), blocks[-1][0]
        (19, 'features.18')
    """
    blocks = []
    for name, child in net.named_children():
        if name == head.split(".")[0] or not any(True for _ in child.parameters()):
            continue
        if isinstance(child, torch.nn.Sequential) and len(child) > 1:
            blocks += [(f"{name}.{i}", block) for i, block in child.named_children()]
        else:
            blocks.append((name, child))
    return blocks


def build_network(arch, state_dict: dict, head: tuple, layers: int | str) -> FineTuneNet:
    """The network a worker trains, with only the blocks ``layers`` names left trainable."""
    from framelab.toolkits.deep_features.network import feature_network

    flat, _ = feature_network(arch, state_dict, None)
    backbone = flat.inner  # the architecture, its head an identity
    net = FineTuneNet(flat, *head)
    blocks = backbone_blocks(backbone, "")
    trainable = blocks if layers == "all" else blocks[len(blocks) - int(layers):] if int(layers) else []
    for p in backbone.parameters():
        p.requires_grad_(False)
    for _, block in trainable:
        for p in block.parameters():
            p.requires_grad_(True)
    return net


def set_train_mode(net: FineTuneNet) -> None:
    """Training mode, with every batch norm (and a frozen backbone) kept in inference mode."""
    net.train()
    for module in net.backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    if not any(p.requires_grad for p in net.backbone.parameters()):
        net.backbone.eval()


def cosine_factor(step: int, total: int) -> float:
    """The cosine schedule's multiplier of the base learning rates at ``step`` of ``total``.

    Example:
        >>> from framelab.toolkits.image_classifier.train_loop import cosine_factor
        >>> cosine_factor(0, 10), cosine_factor(5, 10), round(cosine_factor(10, 10), 6)
        (1.0, 0.5, 0.0)
    """
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))


def optimizer_for(net: FineTuneNet, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD over the trainable parameters: head and backbone in their own groups, no decay on biases or norms."""
    groups = []
    for part, lr in ((net.head, recipe.learning_rate),
                     (net.backbone, recipe.learning_rate * recipe.backbone_lr_ratio)):
        params = [p for p in part.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        rest = [p for p in params if p.ndim <= 1]
        for ps, wd in ((decay, recipe.weight_decay), (rest, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd})
    return torch.optim.SGD(groups, lr=recipe.learning_rate, momentum=recipe.momentum, nesterov=True)


def train_worker(config: dict) -> None:
    """The loop each Ray Train worker runs (``train_loop_per_worker``); see the module's docstring."""
    import ray.train
    import ray.train.torch

    from framelab.toolkits.deep_features.weights import state_dict_sha256

    recipe = Recipe(**config["recipe"])
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    arch, state_dict = ray.get(config["network"][0])
    net = build_network(arch, state_dict, config["head"], recipe.layers)
    device = ray.train.torch.get_device()
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # one input size: pick the fastest kernels once
        net = net.to(device, memory_format=torch.channels_last)
    optimizer = optimizer_for(net, recipe)
    trainable = [p for p in net.parameters() if p.requires_grad]
    history: list[dict] = []
    start_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            saved = torch.load(os.path.join(folder, _STATE_FILE), map_location="cpu", weights_only=True)
            with open(os.path.join(folder, _PROGRESS_FILE)) as f:
                progress = json.load(f)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        history = progress["history"]
        start_epoch = progress["epoch"] + 1
    model = ray.train.torch.prepare_model(net, move_to_device=not cuda) if world > 1 else net.to(device)
    mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1) * 255
    autocast = _autocast(device)
    scaler = torch.amp.GradScaler("cuda") if cuda and autocast[1] == torch.float16 else None
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    per_worker = max(1, recipe.batch_size // world)
    total_steps = recipe.epochs * config["steps_per_epoch"]
    step = start_epoch * config["steps_per_epoch"]

    def inputs(batch: dict) -> torch.Tensor:
        x = batch["pixels"].to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = x.sub_(mean).div_(std)
        return x.contiguous(memory_format=torch.channels_last) if cuda else x

    for epoch in range(start_epoch, recipe.epochs):
        if _stopped_early(history, recipe):
            break
        set_train_mode(net)
        started = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
        rows_seen: list[int] = []
        shard = ray.train.get_dataset_shard(f"train_{epoch}")
        for batch in shard.iter_torch_batches(batch_size=per_worker, pin_memory=cuda, device="cpu"):
            factor = cosine_factor(step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            x, y = inputs(batch), batch["label"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=autocast[1], enabled=autocast[0]):
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, recipe.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, recipe.max_grad_norm)
                optimizer.step()
            step += 1
            n = len(y)
            sums += torch.tensor([loss.item() * n, (logits.argmax(1) == y).sum().item(), n], dtype=torch.float64)
            rows_seen += batch["row"].tolist()
        train_s = time.perf_counter() - started
        valid = _evaluate(model, net, inputs, device, per_worker, autocast) if config["has_validation"] else None
        metrics = _gather(sums, valid, rows_seen, state_dict_sha256(net), world)
        # resumed_from: the finished epochs this worker group found in the checkpoint when it started.
        metrics.update(epoch=epoch + 1, seconds=train_s, resumed_from=start_epoch,
                       images_per_second=metrics["images"] / train_s if train_s > 0 else None,
                       learning_rate=recipe.learning_rate * cosine_factor(step, total_steps))
        history.append(metrics)
        if config["verbose"] and rank == 0:
            _print_epoch(metrics)
        _report(net, optimizer, epoch, history, rank)


def _autocast(device: torch.device) -> tuple[bool, torch.dtype]:
    if device.type != "cuda":
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _stopped_early(history: list[dict], recipe: Recipe) -> bool:
    scores = [h["validation_accuracy"] for h in history if h.get("validation_accuracy") is not None]
    if not recipe.early_stopping or len(scores) <= PATIENCE:
        return False
    return max(scores[-PATIENCE:]) <= max(scores[:-PATIENCE])


def _evaluate(model, net, inputs, device, per_worker: int, autocast) -> torch.Tensor:
    import ray.train

    net.eval()
    sums = torch.zeros(2, dtype=torch.float64)  # correct, n
    with torch.inference_mode():
        for batch in ray.train.get_dataset_shard("validation").iter_torch_batches(batch_size=per_worker):
            with torch.autocast(device.type, dtype=autocast[1], enabled=autocast[0]):
                logits = model(inputs(batch))
            y = batch["label"].to(device)
            sums += torch.tensor([(logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
    return sums


def _gather(sums: torch.Tensor, valid: torch.Tensor | None, rows: list[int], digest: str, world: int) -> dict:
    """The epoch's metrics over every worker, and what each worker saw (proof that DDP split and synced)."""
    import ray

    mine = {"rows": rows, "params_sha256": digest, "node": ray.get_runtime_context().get_node_id()}
    per_worker = [mine]
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(sums)
        if valid is not None:
            dist.all_reduce(valid)
        per_worker = [None] * world
        dist.all_gather_object(per_worker, mine)
    loss, correct, n = sums.tolist()
    seen = [set(w["rows"]) for w in per_worker]
    return {
        "loss": loss / max(n, 1),
        "training_accuracy": correct / max(n, 1),
        "validation_accuracy": None if valid is None or valid[1] == 0 else float(valid[0] / valid[1]),
        "images": int(n),
        "rows_per_worker": [len(s) for s in seen],
        "rows_seen_twice": len(rows) - len(set(rows)) if world == 1 else sum(map(len, seen)) - len(set().union(*seen)),
        "params_identical": len({w["params_sha256"] for w in per_worker}) == 1,
        "nodes": len({w["node"] for w in per_worker}),
    }


def _report(net: FineTuneNet, optimizer, epoch: int, history: list[dict], rank: int) -> None:
    import ray.train

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()},
                       os.path.join(folder, _STATE_FILE))
            with open(os.path.join(folder, _PROGRESS_FILE), "w") as f:
                json.dump({"epoch": epoch, "history": history}, f)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({"epoch": epoch + 1, "history": json.dumps(history)}, checkpoint=checkpoint)


def read_checkpoint(checkpoint) -> tuple[dict, list[dict]]:
    """The trained network's state dict and the epochs' metrics from a checkpoint :func:`train_worker` wrote."""
    with checkpoint.as_directory() as folder:
        saved = torch.load(os.path.join(folder, _STATE_FILE), map_location="cpu", weights_only=True)
        with open(os.path.join(folder, _PROGRESS_FILE)) as f:
            progress = json.load(f)
    return saved["model"], progress["history"]


def _print_epoch(m: dict) -> None:
    valid = "n/a" if m["validation_accuracy"] is None else f"{m['validation_accuracy']:.4f}"
    print(f"fine-tune epoch {m['epoch']}: loss {m['loss']:.4f}, training accuracy {m['training_accuracy']:.4f}, "
          f"validation accuracy {valid}, {m['images_per_second'] or 0:.1f} images/s", flush=True)


def recipe_dict(recipe: Recipe) -> dict:
    """The recipe as JSON-able fields (what a saved model records)."""
    return asdict(recipe)

