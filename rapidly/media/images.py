"""Deciding what an uploaded file is, and re-encoding it so that only pixels remain.

The type comes from the magic bytes and a successful decode, never from the filename or the
client's content type. Every image is decoded in full (a truncated one fails), turned upright by its
EXIF orientation, converted to sRGB, and encoded afresh: no EXIF (GPS, camera serials), XMP, ICC
text, comments or embedded thumbnails survive, and a polyglot (a JPEG that is also HTML) loses
whatever was not pixels. Pure functions, run in a worker thread.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from rapidly.errors import InputInvalid

#: Magic bytes -> (Pillow format, content type). HEIC is not accepted (no safe decoder in the stack).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "PNG", "image/png"),
)
_WEBP = ("WEBP", "image/webp")
_SRGB = ImageCms.createProfile("sRGB")
# Pillow's decoders log every EXIF tag with its value at DEBUG (names, places, GPS): never let
# them reach a log, whatever level the host application logs at.
logging.getLogger("PIL").setLevel(logging.INFO)


@dataclass(frozen=True, slots=True)
class CleanImage:
    data: bytes
    content_type: str
    width: int
    height: int


def sniff(head: bytes) -> tuple[str, str] | None:
    """(Pillow format, content type) from the first bytes, or None when it is none we accept."""
    for magic, fmt, content_type in _SIGNATURES:
        if head.startswith(magic):
            return fmt, content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _WEBP
    return None


def clean(data: bytes, max_pixels: int) -> CleanImage:
    """The image re-encoded with pixels only; `InputInvalid` for anything else."""
    kind = sniff(data[:16])
    if kind is None:
        raise _not_an_image()
    fmt, content_type = kind
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
                width, height = probe.size
                if width * height > max_pixels or getattr(probe, "n_frames", 1) > 1:
                    raise _too_big() if width * height > max_pixels else _animated()
                probe.load()
                icc = probe.info.get("icc_profile")
                ImageOps.exif_transpose(probe, in_place=True)
                image = _to_srgb(probe, icc)
                out = _encode(image, fmt)
    except InputInvalid:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_big() from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise _not_an_image() from None
    return CleanImage(out, content_type, image.width, image.height)


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels in sRGB (phones shoot Display P3), so that the profile itself can be dropped."""
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode, inPlace=True)
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: keep the pixels as they are
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    # Some encoders fall back to what the source carried (PNG text chunks and ICC, say): drop it
    # all, so that only what is passed here is written.
    image.info = {}
    if fmt == "JPEG":
        (image if image.mode == "RGB" else image.convert("RGB")).save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "PNG":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "WEBP", quality=85)
    return out.getvalue()


def _not_an_image() -> InputInvalid:
    return InputInvalid.one("file", "not_an_image", "This file is not a JPEG, PNG or WebP image we can read.")


def _too_big() -> InputInvalid:
    return InputInvalid.one("file", "too_many_pixels", "This image has too many pixels.")


def _animated() -> InputInvalid:
    return InputInvalid.one("file", "animated", "Animated images are not accepted.")
