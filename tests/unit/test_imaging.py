"""Codecs and physical transformations (advparams.imaging)."""

from __future__ import annotations

import pytest
import torch

from advparams.errors import AdvParamsError
from advparams.imaging import CODECS, TRANSFORMATIONS, compress, random_physical, transform


def _natural(n: int, c: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth images with edges (closer to photographs than noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, 4, 4, generator=g) * 200 + 20
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x[:, :, size // 3 : size // 2, size // 4 : size // 2] = 240.0
    return x.round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_codec_is_lossy_at_every_quality(codec: str, channels: int) -> None:
    x = _natural(4, channels)
    errors = []
    for q in (10, 30, 50, 70, 90):
        y = compress(x, codec, q)
        assert y.dtype == torch.uint8 and y.shape == x.shape
        assert bool((y != x).any()), f"{codec} at quality {q} gave the image back unchanged"
        assert torch.equal(compress(x, codec, q), y)  # a codec is deterministic
        errors.append(float((y.float() - x.float()).abs().mean()))
    assert errors[0] > errors[-1], f"{codec}: quality 10 should lose more than 90 ({errors})"


def test_codec_errors() -> None:
    x = _natural(1, 1)
    with pytest.raises(AdvParamsError, match="unknown codec"):
        compress(x, "png", 50)
    with pytest.raises(AdvParamsError, match="quality"):
        compress(x, "jpeg", 0)
    with pytest.raises(AdvParamsError, match="uint8"):
        compress(x.float(), "jpeg", 50)


@pytest.mark.parametrize("kind", TRANSFORMATIONS)
def test_transformations_are_reproducible_from_their_seed(kind: str) -> None:
    x = _natural(6, 3)
    strength = {"rotation": 15.0, "scale": 0.2, "perspective": 0.1, "blur": 1.0, "noise": 8.0}.get(kind, 0.3)
    a = transform(x, kind, strength, generator=torch.Generator().manual_seed(5))
    b = transform(x, kind, strength, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert bool((a != x).any())
    assert torch.equal(transform(x, kind, 0.0, generator=torch.Generator()), x)
    if kind != "blur":  # blur draws nothing
        c = transform(x, kind, strength, generator=torch.Generator().manual_seed(6))
        assert not torch.equal(a, c)


def test_rotation_by_a_right_angle_is_rot90() -> None:
    x = _natural(8, 1, size=16)
    y = transform(x, "rotation", 90.0, generator=torch.Generator().manual_seed(0))
    for i in range(8):
        options = [torch.rot90(x[i], k, dims=(1, 2)) for k in (1, -1)]
        assert any(int((y[i].int() - o.int()).abs().max()) <= 1 for o in options)


def test_blur_noise_and_scale_do_what_they_say() -> None:
    x = _natural(16, 1)
    g = torch.Generator().manual_seed(0)
    flat = torch.full((16, 1, 32, 32), 128, dtype=torch.uint8)
    noisy = transform(flat, "noise", 10.0, generator=g)
    assert 9.0 < float(noisy.float().std()) < 11.0
    blurred = transform(noisy, "blur", 2.0, generator=g)
    assert float(blurred.float().std()) < 0.3 * float(noisy.float().std())
    zoomed = transform(x, "scale", 0.5, generator=g)
    assert bool((zoomed != x).any())


def test_random_physical_composes_and_is_seeded() -> None:
    x = _natural(5, 3)
    ranges = {"rotation": 10.0, "noise": 5.0, "colour-shift": 0.2}
    a = random_physical(x, ranges, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, random_physical(x, ranges, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, random_physical(x, ranges, generator=torch.Generator().manual_seed(2)))
    with pytest.raises(AdvParamsError, match="unknown transformation"):
        random_physical(x, {"warp": 1.0}, generator=torch.Generator())
    with pytest.raises(AdvParamsError, match="strength"):
        transform(x, "noise", -1.0, generator=torch.Generator())


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_read_image_refuses_huge_claims_and_non_images(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from advparams.imaging import png_bytes, read_image

    x = _natural(1, 3, size=20)[0]
    (tmp_path / "ok.png").write_bytes(png_bytes(x))
    assert torch.equal(read_image(tmp_path / "ok.png", 3), x)
    assert read_image(tmp_path / "ok.png", 1).shape == (1, 20, 20)  # converted to grey
    (tmp_path / "huge.png").write_bytes(_png_header_only(100_000, 100_000))  # 40 bytes claiming 10^10 pixels
    with pytest.raises(AdvParamsError, match="too large an image"):
        read_image(tmp_path / "huge.png", 1)
    (tmp_path / "wide.png").write_bytes(_png_header_only(5000, 2))  # few pixels, one side too long
    with pytest.raises(AdvParamsError, match="too large an image.*5000x2"):
        read_image(tmp_path / "wide.png", 1)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(AdvParamsError, match="not an image"):
        read_image(tmp_path / "text.png", 1)
    with pytest.raises(AdvParamsError, match="folder|regular"):
        read_image(tmp_path, 1)


def _pillow_bytes(fmt: str, size: tuple[int, int] = (20, 20), mode: str = "L") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "EPS", "ICO", "SGI"])
def test_read_image_opens_only_the_listed_formats(tmp_path, fmt) -> None:  # type: ignore[no-untyped-def]
    """Pillow opens dozens of formats, EPS through Ghostscript: an image from someone else is
    opened only as one of IMAGE_FORMATS (before: any of them was decoded)."""
    from advparams.imaging import read_image

    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_pillow_bytes(fmt, mode="RGB" if fmt == "EPS" else "L"))
    with pytest.raises(AdvParamsError, match="not an image Pillow can read as PNG, JPEG, WEBP, PPM, BMP, GIF, TIFF"):
        read_image(path, 1)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "PPM", "BMP", "GIF", "TIFF"])
def test_read_image_reads_every_listed_format(tmp_path, fmt) -> None:  # type: ignore[no-untyped-def]
    from advparams.imaging import IMAGE_FORMATS, read_image

    assert fmt in IMAGE_FORMATS
    path = tmp_path / "x.img"
    path.write_bytes(_pillow_bytes(fmt, size=(24, 12)))
    assert read_image(path, 1).shape == (1, 12, 24) and read_image(path, 3).shape == (3, 12, 24)


def test_read_image_bounds_pixels_before_decoding_without_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An image between Pillow's warning (89 M pixels) and error (179 M) caps was refused
    with a DecompressionBombWarning printed beside the error line; the largest allowed
    image decodes."""
    import warnings

    from advparams.imaging import MAX_IMAGE_SIDE, read_image

    (tmp_path / "warn.png").write_bytes(_png_header_only(10_000, 9_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AdvParamsError, match="too large an image"):
            read_image(tmp_path / "warn.png", 1)
    (tmp_path / "edge.png").write_bytes(_pillow_bytes("PNG", size=(MAX_IMAGE_SIDE, 3)))
    assert read_image(tmp_path / "edge.png", 1).shape == (1, 3, MAX_IMAGE_SIDE)
    (tmp_path / "over.png").write_bytes(_pillow_bytes("PNG", size=(MAX_IMAGE_SIDE + 1, 3)))
    with pytest.raises(AdvParamsError, match=f"{MAX_IMAGE_SIDE + 1}x3"):
        read_image(tmp_path / "over.png", 1)
    with pytest.raises(AdvParamsError, match="1 or 3 channels"):
        read_image(tmp_path / "edge.png", 2)


def test_measurement_settings_are_checked_first() -> None:
    from advparams.imaging import check_quality, check_strength

    assert check_quality(95) == 95
    for q in (0, 96, 50.0, True):
        with pytest.raises(AdvParamsError, match=r"quality must be an integer in \[1, 95\]"):
            check_quality(q)  # type: ignore[arg-type]
    for s in (-1.0, float("nan"), float("inf")):
        with pytest.raises(AdvParamsError, match=r"blur strength must be a number in \[0, 10\]"):
            check_strength("blur", s)


def test_read_image_prints_no_warning_of_pillow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A TIFF whose tag points past its end made Pillow warn ("Tag data larger than file"): a
    second line beside the CLI's one line. Such notes are not shown; the image is read or refused."""
    import contextlib
    import struct
    import warnings

    from advparams.imaging import read_image

    blob = bytearray(_pillow_bytes("TIFF", size=(8, 8)))
    first_ifd = struct.unpack("<I", blob[4:8])[0]
    count = struct.unpack("<H", blob[first_ifd : first_ifd + 2])[0]
    for i in range(count):  # every tag's value: a count far past the file's end
        entry = first_ifd + 2 + 12 * i
        blob[entry + 4 : entry + 8] = struct.pack("<I", 10**6)
    (tmp_path / "odd.tif").write_bytes(bytes(blob))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(AdvParamsError):
            read_image(tmp_path / "odd.tif", 1)


def test_every_transformation_has_a_largest_strength_and_ptb_keeps_to_it() -> None:
    """A blur of 1000 passed and then took gigabytes for a few small images."""
    from advparams.backdoors import BACKDOORS
    from advparams.errors import AdvParamsError, ConfigError
    from advparams.imaging import STRENGTH_LIMITS, TRANSFORMATIONS, check_strength

    assert set(STRENGTH_LIMITS) == set(TRANSFORMATIONS)
    for kind, top in STRENGTH_LIMITS.items():
        assert check_strength(kind, top) == top
        with pytest.raises(AdvParamsError, match=rf"{kind} strength must be a number in \[0, {top:g}\]"):
            check_strength(kind, top * 1.5)
    with pytest.raises(ConfigError, match=r"blur must be in \[0, 10\], got 1000"):
        BACKDOORS.build("ptb", {"blur": 1000})
