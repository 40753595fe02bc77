import numpy as np
import pytest

from core.errors import ColourError, RelitIOError, ValidationError
from core.io.colour import convert, resolve
from core.io.sequence import find_frames, frame_path, is_sequence, parse_frame_range


@pytest.mark.parametrize("pattern", ["plate.####.exr", "plate.%04d.exr"])
def test_sequences_with_1001_start_and_gaps(tmp_path, pattern):
    for f in (1001, 1002, 1005, 10000):
        (tmp_path / f"plate.{f:04d}.exr").write_bytes(b"x")
    (tmp_path / "plate.1003.exr.partial").write_bytes(b"x")
    (tmp_path / "other.1004.exr").write_bytes(b"x")
    full = str(tmp_path / pattern)
    assert is_sequence(full)
    frames = find_frames(full)
    assert list(frames) == [1001, 1002, 1005, 10000]
    assert frames[1005] == tmp_path / "plate.1005.exr"
    assert frame_path(full, 7) == tmp_path / "plate.0007.exr"


def test_single_files_and_errors(tmp_path):
    (tmp_path / "still.exr").write_bytes(b"x")
    assert find_frames(str(tmp_path / "still.exr")) == {0: tmp_path / "still.exr"}
    assert not is_sequence("a/b.exr")
    with pytest.raises(RelitIOError, match="no frames"):
        find_frames(str(tmp_path / "none.####.exr"))
    with pytest.raises(ValidationError, match="more than one"):
        frame_path("a.####.%04d.exr", 1)


def test_frame_ranges():
    assert parse_frame_range("1001-1005x2,1010") == [1001, 1003, 1005, 1010]
    assert parse_frame_range("7") == [7]
    for bad in ("a-b", "5-1", "1-3x0"):
        with pytest.raises(ValidationError):
            parse_frame_range(bad)


def test_srgb_texture_to_linear_is_the_srgb_eotf():
    v = np.linspace(0, 1, 11, dtype=np.float32)
    px = np.stack([v, v, v], -1)
    lin = convert(px, "srgb_tx", "lin_rec709")[:, 0]
    ref = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(lin, ref, atol=2e-4)


def test_rec709_to_acescg_matrix():
    # the published linear Rec.709 (D65) -> ACEScg (AP1, D60, Bradford) matrix
    ref = np.array([[0.61309732, 0.33952285, 0.04737928],
                    [0.07019422, 0.91635557, 0.01345259],
                    [0.02061560, 0.10956983, 0.86981512]])
    out = convert(np.eye(3, dtype=np.float32), "lin_rec709", "acescg")
    np.testing.assert_allclose(out.T, ref, atol=2e-3)
    np.testing.assert_allclose(convert(np.ones((1, 3), np.float32), "lin_rec709", "acescg"), 1.0, atol=2e-3)


def test_unknown_colour_space():
    assert resolve("acescg") == "ACEScg"
    with pytest.raises(ColourError, match="not in the OCIO config"):
        convert(np.zeros((1, 3), np.float32), "lin_rec709", "Kodak 5219")


def test_plates_are_converted_to_the_working_space_on_read(tmp_path):
    import OpenImageIO as oiio

    from core.io.plates import read_plate

    v = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    png = tmp_path / "plate.png"
    buf = oiio.ImageBuf(oiio.ImageSpec(3, 1, 3, "uint8"))
    buf.set_pixels(oiio.ROI(), np.repeat(v[..., None], 3, axis=2))
    assert buf.write(str(png))
    plate = read_plate(png)
    assert resolve(plate.colour_space) == "sRGB Encoded Rec.709 (sRGB)"
    np.testing.assert_allclose(plate.rgb[0, :, 0], [0.0, ((128 / 255 + 0.055) / 1.055) ** 2.4, 1.0], atol=2e-3)
    assert np.all(plate.alpha == 1)
    aces = read_plate(png, working="acescg")
    np.testing.assert_allclose(aces.rgb[0, 2], 1.0, atol=2e-3)  # white stays white
