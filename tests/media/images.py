"""Image files for the tests, made with Pillow: phone-like JPEGs with EXIF and GPS, and hostile ones."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image, UnidentifiedImageError


def jpeg(
    width: int = 640,
    height: int = 480,
    *,
    comment: str | None = None,
    gps: bool = False,
    orientation: int | None = None,
    quality: int = 90,
) -> bytes:
    """A JPEG with a gradient, and optionally an EXIF user comment, GPS position and orientation."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if comment is not None:
        exif[ExifTags.Base.ImageDescription] = comment
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"ASCII\x00\x00\x00" + comment.encode()
    if gps:
        info = exif.get_ifd(ExifTags.IFD.GPSInfo)
        info[ExifTags.GPS.GPSLatitudeRef] = "N"
        info[ExifTags.GPS.GPSLatitude] = (60.0, 10.0, 12.5)
        info[ExifTags.GPS.GPSLongitudeRef] = "E"
        info[ExifTags.GPS.GPSLongitude] = (24.0, 56.0, 1.25)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=quality, comment=(comment or "").encode() or None)
    return out.getvalue()


def noisy_jpeg(width: int = 1200, height: int = 900) -> bytes:
    """A photo that stays large after cleaning (noise does not compress): a sealed object of several
    segments."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 90).convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


def png(width: int = 64, height: int = 48, *, text: str | None = None) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", text)
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 30, 128)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def webp(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 30)).save(out, "WEBP")
    return out.getvalue()


def png_bomb(side: int = 30_000) -> bytes:
    """A valid PNG header claiming side x side pixels, with a tiny, highly compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    body = zlib.compress(row * 2000, 9)  # far fewer rows than claimed: still a bomb by its header
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def polyglot() -> bytes:
    """A JPEG that is also an HTML page: script in a comment segment and after the end marker."""
    html = b"<html><script>alert(document.cookie)</script></html>"
    data = jpeg(32, 32)
    com = b"\xff\xfe" + struct.pack(">H", len(html) + 2) + html
    return data[:2] + com + data[2:] + html


def is_image(data: bytes) -> bool:
    """Whether Pillow reads `data` as an image of any format it knows."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return True
