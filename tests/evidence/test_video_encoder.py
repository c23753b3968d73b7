"""The in-memory H.264/MP4 encoder (real FFmpeg through PyAV); decoded back with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from agent.evidence.video_encoder import (
    SOFTWARE_CODEC,
    Mp4Writer,
    VideoEncoderError,
    choose_codec,
    encode_frames,
    scaled_size,
)


def _frames(n: int, w: int = 320, h: int = 180) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : (i * 7) % w] = (0, 128, 255)  # a moving edge, so frames differ
        out.append(img)
    return out


def test_frames_become_an_mp4_that_decodes_to_the_same_number_of_frames() -> None:
    video = encode_frames(_frames(25), 10, SOFTWARE_CODEC)
    assert video.mp4[4:8] == b"ftyp"
    assert (video.info.frames, video.info.width, video.info.height) == (25, 320, 180)
    with av.open(io.BytesIO(video.mp4)) as c:
        decoded = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(decoded) == 25 and decoded[0].shape == (180, 320, 3)
    # Lossy, but the picture is the picture: the orange edge is where it was.
    assert abs(int(decoded[20][90, 100, 2]) - 255) < 40 and decoded[20][90, 300, 2] < 40


def test_this_machine_has_no_pi_hardware_encoder_and_says_so() -> None:
    # No /dev/video11 of a VC4 Pi here: auto picks software, hardware is a clear error.
    assert choose_codec("auto") == SOFTWARE_CODEC
    with pytest.raises(VideoEncoderError, match="no Pi H.264 hardware encoder"):
        choose_codec("hardware")


def test_bad_input_is_a_one_line_error() -> None:
    with pytest.raises(VideoEncoderError, match="no frames"):
        encode_frames([], 10, SOFTWARE_CODEC)
    with pytest.raises(VideoEncoderError, match="even"):
        Mp4Writer(321, 180, 10)
    w = Mp4Writer(320, 180, 10)
    with pytest.raises(VideoEncoderError, match="expected 320×180"):
        w.add(np.zeros((100, 100, 3), np.uint8))
    w.abandon()


def test_scaled_sizes_are_even_and_never_upscaled() -> None:
    assert scaled_size(1280, 720, 640) == (640, 360)
    assert scaled_size(320, 240, 640) == (320, 240)
    assert scaled_size(1279, 721, 641) == (640, 360)
