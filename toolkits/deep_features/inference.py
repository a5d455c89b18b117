"""The model stage: a Ray Data actor that loads the network once and turns pixels into features.

On a GPU it copies pixels through a reused pinned buffer with non-blocking
transfers, normalises on the device, runs channels-last under autocast and
inference mode, and picks its micro-batch from the free GPU memory. On a CPU
it uses exactly the threads Ray granted it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from framelab.frames.images import pixels_to_batch
from framelab.frames.vectors import vectors_from_numpy
from framelab.platform.resources import threads_for
from framelab.toolkits.deep_features.network import feature_network
from framelab.toolkits.deep_features.preprocessing import Preprocessing

_AUTOCAST = {"float16": torch.float16, "bfloat16": torch.bfloat16}
# Largest micro-batch the GPU is given at once; beyond it throughput stops growing.
_MAX_GPU_BATCH = 512
# Images in the forward pass that measures activation memory per image.
_PROBE_BATCH = 8


@dataclass(frozen=True)
class StageConfig:
    """What every model actor needs: the network, how to read its input, what to write."""

    network: object  # an ObjectRef (in a list, so Ray does not resolve it early) to (model, state_dict)
    layer: str | None
    preprocessing: Preprocessing
    output_field: pa.Field
    pixels_column: str
    device: str  # "cpu" or "cuda"
    num_cpus: float
    precision: str  # "float32", "float16" or "bfloat16"
    batch_size: int | None  # None: from free GPU memory


class FeatureActor:
    """The worker a model actor holds: a pixels column in, a features column out (the pixels dropped).

    Example:
        >>> import io, ray, pyarrow as pa, torch
        >>> from PIL import Image
        >>> from framelab.toolkits.deep_features import Preprocessing
        >>> from framelab.toolkits.deep_features.decode import decode_batch
        >>> from framelab.toolkits.deep_features.inference import FeatureActor, StageConfig
        >>> prep = Preprocessing(resize=(8, 8), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> buf = io.BytesIO(); Image.new("RGB", (9, 7)).save(buf, "PNG")
        >>> pixels = decode_batch(pa.table({"img": [buf.getvalue()]}), column="img", preprocessing=prep)
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
        >>> field = pa.field("f", pa.list_(pa.float32(), 4))
        >>> actor = FeatureActor(StageConfig([ray.put((net, None))], None, prep, field, "__framelab_pixels__", "cpu", 1.0, "float32", 8))
        >>> actor(pixels).schema.names
        ['img', 'f']
    """

    def __init__(self, config: StageConfig):
        import ray

        torch.set_num_threads(threads_for(config.num_cpus))
        self.config = config
        model, state_dict = ray.get(config.network[0])
        net, _ = feature_network(model, state_dict, config.layer)
        self.device = torch.device(config.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels once
            net = net.to(self.device, memory_format=torch.channels_last)
        self.net = net.eval()
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(config.preprocessing.mean, device=self.device).view(shape) * 255
        self.std = torch.tensor(config.preprocessing.std, device=self.device).view(shape) * 255
        self.autocast = _AUTOCAST.get(config.precision)
        self.out_dtype = config.output_field.type.value_type.to_pandas_dtype()
        self.dim = config.output_field.type.list_size
        self.pinned: list | None = None
        self.batch_size = config.batch_size or _PROBE_BATCH
        if config.batch_size is None:
            self.batch_size = self._batch_from_memory()

    def __call__(self, table: pa.Table) -> pa.Table:
        cfg = self.config
        pixels, valid = pixels_to_batch(table.column(cfg.pixels_column))
        features = np.zeros((len(pixels), self.dim), dtype=self.out_dtype)
        rows = np.flatnonzero(valid)
        dense = len(rows) == len(pixels)
        # One batch's result is collected only after the next batch is queued, so the host copy
        # of batch i+1 overlaps the GPU's work on batch i.
        pending: tuple | None = None
        for slot, start in enumerate(range(0, len(rows), self.batch_size)):
            if dense:  # a slice is a view; fancy indexing would copy every batch
                index = slice(start, start + self.batch_size)
            else:
                index = rows[start : start + self.batch_size]
            out = self._forward(pixels[index], slot % 2)
            if pending is not None:
                features[pending[0]] = pending[1].float().cpu().numpy()
            pending = (index, out)
        if pending is not None:
            features[pending[0]] = pending[1].float().cpu().numpy()
        column = vectors_from_numpy(features, mask=None if dense else ~valid)
        return table.drop_columns([cfg.pixels_column]).append_column(cfg.output_field, column)

    def _forward(self, pixels: np.ndarray, slot: int = 0) -> torch.Tensor:
        """Queue one batch on the device; the returned tensor is ready once synchronised."""
        with torch.inference_mode():
            x = self._to_device(pixels, slot)
            # NHWC uint8 permuted to NCHW is channels-last already; the float copy keeps that layout.
            x = x.permute(0, 3, 1, 2).float().sub_(self.mean).div_(self.std)
            autocast = (
                torch.autocast(self.device.type, dtype=self.autocast)
                if self.autocast is not None
                else contextlib.nullcontext()
            )
            with autocast:
                return self.net(x)

    def _to_device(self, pixels: np.ndarray, slot: int = 0) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.from_numpy(np.array(pixels))  # Arrow buffers are read-only
        n = len(pixels)
        buffer = self.pinned[slot] if self.pinned is not None else None
        if buffer is None or buffer.shape[0] < n or buffer.shape[1:] != pixels.shape[1:]:
            buffer = torch.empty((max(n, self.batch_size), *pixels.shape[1:]), dtype=torch.uint8).pin_memory()
            self.pinned = list(self.pinned or [None, None])
            self.pinned[slot] = buffer
        staged = buffer[:n]
        # Two buffers in turn: a buffer is refilled two batches after its copy was queued, and the
        # batch in between was synchronised by then, so that copy has finished.
        staged.numpy()[...] = pixels
        return staged.to(self.device, non_blocking=True)

    def _batch_from_memory(self) -> int:
        if self.device.type != "cuda":
            return _PROBE_BATCH
        height, width = self.config.preprocessing.output_size
        probe = _PROBE_BATCH
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self._forward(np.zeros((probe, height, width, 3), dtype=np.uint8)).cpu()
        torch.cuda.synchronize(self.device)
        per_image = max(1, (torch.cuda.max_memory_allocated(self.device) - before) / probe)
        free, _ = torch.cuda.mem_get_info(self.device)
        # Half of what is free: cuDNN workspaces and other tenants need the rest.
        fit = int(0.5 * free / per_image)
        return max(1, min(_MAX_GPU_BATCH, 1 << max(0, fit.bit_length() - 1)))
