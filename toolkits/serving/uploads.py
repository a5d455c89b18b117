"""What a served model accepts, checked in one place: every refusal is a 4xx status and a message with the fix.

Two request forms (the README's "Serving" section documents them):

* the one way: ``POST`` the image file's bytes unchanged, ``Content-Type: image/*``;
* a batch: ``POST`` ``application/json`` ``{"images": ["<base64>", ...]}``.

Each image is checked before it reaches a batch: not empty, readable by PIL,
not over ``max_pixels`` (a decompression bomb is refused from its header,
before any pixel memory exists). Query-string parameters (``?k=5``) are
checked against what the model's method takes.

Example:
    >>> from framelab.toolkits.serving.uploads import RequestError, request_form
    >>> request_form("image/jpeg"), request_form("application/json; charset=utf-8")
    ('image', 'batch')
    >>> try:
    ...     request_form("text/plain")
    ... except RequestError as err:
    ...     err.status
    415
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from framelab.frames.errors import InputError
from framelab.frames.images import DEFAULT_MAX_PIXELS, ImageDecodeError, probe_image

# A request body larger than this is refused before it is read whole.
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
# Images in one batch request; more is refused (split the batch).
DEFAULT_MAX_BATCH_IMAGES = 64
# PIL's default limit, as everywhere in framelab (frames.images).
MAX_PIXELS = DEFAULT_MAX_PIXELS


class RequestError(InputError):
    """A request (or one image of a batch) the model cannot answer: an HTTP 4xx status and a message.

    Example:
        >>> from framelab.toolkits.serving.uploads import RequestError
        >>> RequestError(413, "too big").as_json()
        {'error': {'status': 413, 'message': 'too big'}}
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)
        self.message = message

    def as_json(self) -> dict:
        """The JSON body of the error response."""
        return {"error": {"status": self.status, "message": self.message}}


@dataclass(frozen=True)
class Param:
    """A query-string parameter a model's method takes: its type and the smallest/largest value allowed."""

    kind: type
    low: float | None = None
    high: float | None = None


def request_form(content_type: str | None) -> str:
    """``"image"`` for ``image/*``, ``"batch"`` for ``application/json``; anything else is a 415.

    Example:
        >>> from framelab.toolkits.serving.uploads import request_form
        >>> request_form("IMAGE/PNG")
        'image'
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith("image/"):
        return "image"
    if media == "application/json":
        return "batch"
    shown = repr(content_type) if content_type else "no Content-Type"
    raise RequestError(
        415,
        f"{shown} is not an image: send the image file's bytes with Content-Type: image/jpeg (or "
        "image/png, ...), e.g. curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg', or a batch as "
        'application/json {"images": ["<base64>", ...]}',
    )


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    """Refuse a body whose declared length is over ``max_bytes`` (413) before reading any of it.

    Example:
        >>> from framelab.toolkits.serving.uploads import check_declared_length
        >>> check_declared_length("10", 100)
    """
    if content_length is None:
        return
    try:
        length = int(content_length)
    except ValueError:
        raise RequestError(400, f"Content-Length {content_length!r} is not a number") from None
    if length > max_bytes:
        raise too_large(length, max_bytes)


def too_large(size: int | None, max_bytes: int) -> RequestError:
    """The 413 for a body over the size cap.

    Example:
        >>> from framelab.toolkits.serving.uploads import too_large
        >>> too_large(None, 10).status
        413
    """
    what = f"{size:,} bytes" if size is not None else "the request body"
    return RequestError(
        413,
        f"{what} is over this deployment's limit of {max_bytes:,} bytes per request: send a smaller "
        "image (or fewer in a batch), or deploy with a larger max_request_bytes",
    )


def batch_images(body: bytes, max_images: int = DEFAULT_MAX_BATCH_IMAGES) -> list[bytes | RequestError]:
    """The images of a JSON batch body; an item that is not base64 becomes its own RequestError.

    Example:
        >>> import base64, json
        >>> from framelab.toolkits.serving.uploads import batch_images
        >>> body = json.dumps({"images": [base64.b64encode(b"abc").decode(), "%%"]}).encode()
        >>> [x if isinstance(x, bytes) else x.status for x in batch_images(body)]
        [b'abc', 400]
    """
    if not body:
        raise _empty()
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(400, f"the batch body is not valid JSON ({err}); send "
                                '{"images": ["<base64 of an image file>", ...]}') from None
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, list) or not images:
        raise RequestError(400, 'a batch is a JSON object {"images": ["<base64>", ...]} with at least one image; '
                                f"got {_describe_json(document)}")
    if len(images) > max_images:
        raise RequestError(413, f"the batch has {len(images)} images, over this deployment's limit of "
                                f"{max_images}: split it into several requests")
    out: list[bytes | RequestError] = []
    for i, item in enumerate(images):
        if not isinstance(item, str):
            out.append(RequestError(400, f"image {i} of the batch is {type(item).__name__}, not a base64 string"))
            continue
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            out.append(RequestError(400, f"image {i} of the batch is not valid base64: encode the file's bytes "
                                         "with base64 (standard alphabet, with padding)"))
    return out


def check_image(data: bytes, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse bytes that are empty (400), over ``max_pixels`` (413) or not a readable image (422).

    Only the header is read for the size, so a decompression bomb costs
    nothing; the rest of the file is verified as ``read_images(verify=True)`` does.

    Example:
        >>> from framelab.toolkits.serving.uploads import RequestError, check_image
        >>> try:
        ...     check_image(b"hello")
        ... except RequestError as err:
        ...     err.status
        422
    """
    if not data:
        raise _empty()
    try:
        probe_image(data, max_pixels=max_pixels, verify=True)
    except ImageDecodeError as err:
        message = str(err)
        if "decompression bomb" in message:
            raise RequestError(413, f"{message}; this deployment accepts images of up to {max_pixels:,} pixels: "
                                    "send a smaller image, or deploy with a larger max_pixels") from None
        raise RequestError(422, f"the body is not an image this model can read: {message}. Send the image "
                                "file's bytes unchanged (curl --data-binary @photo.jpg)") from None


def parse_params(query: Mapping[str, str], allowed: Mapping[str, Param]) -> dict:
    """Query-string values converted to the types ``allowed`` names; unknown names and bad values are a 400.

    Example:
        >>> from framelab.toolkits.serving.uploads import Param, parse_params
        >>> parse_params({"k": "5"}, {"k": Param(int, 1)})
        {'k': 5}
    """
    params = {}
    for name, text in query.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise RequestError(400, f"unknown query parameter {name!r}; this model takes: {known}")
        spec = allowed[name]
        try:
            value = spec.kind(text)
        except (TypeError, ValueError):
            raise RequestError(400, f"query parameter {name}={text!r} must be {_type_word(spec.kind)}") from None
        if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
            bounds = f"at least {spec.low}" if spec.high is None else f"between {spec.low} and {spec.high}"
            raise RequestError(400, f"query parameter {name}={text!r} must be {bounds}")
        params[name] = value
    return params


def _empty() -> RequestError:
    return RequestError(400, "the request body is empty: POST the image file's bytes "
                             "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg')")


def _type_word(kind: type) -> str:
    return {int: "an integer", float: "a number"}.get(kind, kind.__name__)


def _describe_json(document: object) -> str:
    if isinstance(document, dict):
        return f"an object with keys {sorted(document)[:10]}"
    return type(document).__name__
