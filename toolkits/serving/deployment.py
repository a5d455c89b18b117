"""The Ray Serve deployment: one replica holds one model, warm, and answers batches of uploaded images.

A replica loads the model once, from its saved folder, with every check
``load_model`` makes, and builds the network of its extractor once (the same
``FeatureActor`` the offline extraction's warm actors hold, so features are
computed the same way). Each request's images are checked and decoded in
parallel threads as they arrive; Ray Serve's ``@serve.batch`` gathers the
images of requests arriving together into one batch for one pass through
the network; the model's own method then answers the batch
(:mod:`framelab.toolkits.serving.answers`).

Routes under the application's prefix:

* ``POST /`` the image's bytes (``Content-Type: image/*``): the answer as JSON;
* ``POST /batch`` ``{"images": [<base64>, ...]}``: ``{"results": [...]}``, one
  answer or error per image, in order;
* ``GET /`` what is served (kind, version, options): the readiness check.

A bad request is a 4xx JSON error (:mod:`framelab.toolkits.serving.uploads`);
nothing a client sends raises out of a request, so a replica never goes down
because of one.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
from ray import serve

from framelab.frames import Frame
from framelab.platform.resources import threads_for
from framelab.toolkits import load_model
from framelab.toolkits.deep_features.decode import PIXELS_COLUMN, decode_batch
from framelab.toolkits.serving import uploads
from framelab.toolkits.serving.answers import ANSWERS, servable_kind

# The deployment's name inside each application (an application is named by the user).
DEPLOYMENT_NAME = "ImageModel"


@dataclass(frozen=True)
class ReplicaOptions:
    """What every replica of a deployment is told: limits, batching, device and threads."""

    max_batch_size: int
    batch_wait_ms: float
    max_pixels: int = uploads.MAX_PIXELS
    max_request_bytes: int = uploads.DEFAULT_MAX_REQUEST_BYTES
    max_batch_images: int = uploads.DEFAULT_MAX_BATCH_IMAGES
    device: str = "cpu"
    num_cpus: float = 1.0
    version: str = ""


@dataclass
class _Item:
    pixels: pa.Table
    params: tuple


class ImageModelServer:
    """A replica of a served image model (constructed by Ray Serve; see :func:`framelab.toolkits.serving.deploy`)."""

    def __init__(self, source: Any, storage_options: dict | None, options: ReplicaOptions):
        self.model = load_model(source, storage_options) if isinstance(source, str) else source
        self.kind = servable_kind(self.model)
        self.options = options
        self.answer = ANSWERS[self.kind]
        self.network, self.preprocessing = _feature_worker(self.model, options)
        # Decoding threads: PIL releases the GIL while it decodes, so requests decode side by side.
        self.decoders = ThreadPoolExecutor(max(2, threads_for(options.num_cpus)), thread_name_prefix="decode")
        self.runner = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._batched.set_max_batch_size(options.max_batch_size)
        self._batched.set_batch_wait_timeout_s(options.batch_wait_ms / 1000.0)

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        path = request.url.path[len(request.scope.get("root_path", "")):].strip("/")
        try:
            if request.method == "GET" and path == "":
                return JSONResponse(self.describe())
            if request.method != "POST" or path not in ("", "batch"):
                raise uploads.RequestError(
                    404 if path not in ("", "batch") else 405,
                    f"{request.method} /{path} is not served here: POST an image to this URL, a batch to "
                    "<url>/batch, or GET this URL for what is served",
                )
            params = uploads.parse_params(request.query_params, self.answer.params)
            form = uploads.request_form(request.headers.get("content-type"))
            if (form == "batch") != (path == "batch"):
                raise uploads.RequestError(
                    415, "POST one image's bytes (Content-Type: image/*) to this URL, or a JSON batch "
                         '{"images": [...]} (Content-Type: application/json) to <url>/batch',
                )
            body = await self._read_body(request)
            if form == "image":
                return JSONResponse(await self._one(body, params))
            images = uploads.batch_images(body, self.options.max_batch_images)
            results = await asyncio.gather(*(self._one_or_error(item, params) for item in images))
            return JSONResponse({"results": results})
        except uploads.RequestError as err:
            return JSONResponse(err.as_json(), status_code=err.status)
        except Exception as err:  # noqa: BLE001 - whatever it is, the replica keeps serving
            return JSONResponse({"error": {"status": 500, "message": f"{type(err).__name__}: {err}"}},
                                status_code=500)

    def describe(self) -> dict:
        """What this replica serves: the model kind, its parameters and the deployment's options."""
        return {"kind": self.kind, "params": sorted(self.answer.params), **asdict(self.options)}

    def check_health(self) -> None:
        """Ray Serve's health check: the network must still be there."""
        if self.network is None:
            raise RuntimeError("the replica lost its model")

    async def _read_body(self, request: Any) -> bytes:
        cap = self.options.max_request_bytes
        uploads.check_declared_length(request.headers.get("content-length"), cap)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:  # a chunked upload with no declared length stops here
                raise uploads.too_large(None, cap)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _one_or_error(self, data: bytes | uploads.RequestError, params: dict) -> dict:
        try:
            if isinstance(data, uploads.RequestError):
                raise data
            return await self._one(data, params)
        except uploads.RequestError as err:
            return err.as_json()

    async def _one(self, data: bytes, params: dict) -> dict:
        loop = asyncio.get_running_loop()
        pixels = await loop.run_in_executor(self.decoders, self._decode, data)
        result = await self._batched(_Item(pixels, tuple(sorted(params.items()))))
        if isinstance(result, uploads.RequestError):
            raise result
        return result

    def _decode(self, data: bytes) -> pa.Table:
        uploads.check_image(data, self.options.max_pixels)
        table = decode_batch(pa.table({"image": pa.array([data], pa.binary())}), column="image",
                             preprocessing=self.preprocessing)
        return table.select([table.num_columns - 1])

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(self, items: list[_Item]) -> list[dict | uploads.RequestError]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.runner, self._answer_batch, items)

    def _answer_batch(self, items: list[_Item]) -> list[dict | uploads.RequestError]:
        pixels = pa.concat_tables([item.pixels for item in items]).combine_chunks()
        features = self.network(pixels)
        column = features.column(features.num_columns - 1)
        out: list[Any] = [None] * len(items)
        # One pass through the network for the whole batch; the model's method once per set of parameters.
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            if column[i].is_valid:
                groups.setdefault(item.params, []).append(i)
            else:
                out[i] = uploads.RequestError(422, "the image could not be decoded to pixels")
        field = features.schema.field(features.num_columns - 1)
        for params, rows in groups.items():
            table = pa.table([column.take(pa.array(rows))], schema=pa.schema([field]))
            answers = self.answer.answer(self.model, Frame.from_arrow(table), dict(params))
            for i, answer in zip(rows, answers):
                out[i] = answer
        return out


def _feature_worker(model: Any, options: ReplicaOptions) -> tuple[Any, Any]:
    """The model's extractor network, built in this process as the offline extraction builds its actors.

    Returns the worker (a table of decoded pixels in, the model's features
    column out, with the extractor's provenance) and the preprocessing that
    decodes images for it.
    """
    import ray

    from framelab.toolkits.deep_features.inference import FeatureActor, StageConfig

    extractor = model.extractor
    resolved = extractor._resolve()  # the weights and preprocessing transform() would use
    precision = extractor.precision
    if precision == "auto":
        precision = "float16" if options.device == "cuda" else "float32"
    config = StageConfig(
        network=[ray.put((resolved.model, resolved.state_dict))],
        layer=extractor.layer,
        preprocessing=resolved.preprocessing,
        output_field=extractor.output_field(model.feature_column),
        pixels_column=PIXELS_COLUMN,
        device=options.device,
        num_cpus=options.num_cpus,
        precision=precision,
        batch_size=None if options.device == "cuda" else options.max_batch_size,
    )
    return FeatureActor(config), resolved.preprocessing


# Ray Serve wraps the class at import, so replicas import this module and find it by name.
ImageModelDeployment = serve.deployment(name=DEPLOYMENT_NAME)(ImageModelServer)
