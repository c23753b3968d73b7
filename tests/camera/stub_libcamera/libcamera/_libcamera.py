"""A stand-in for libcamera's Python bindings, emulating one Raspberry Pi camera.

libcamera's bindings are a C++ extension packaged only on Raspberry Pi OS, so
tests elsewhere load this module under the name ``libcamera`` and let the real
picamera2 package drive it. It covers the part of the bindings picamera2 uses
to open, configure, start, capture from, stop and close a camera:

* a camera manager whose ``event_fd`` signals completed requests (an eventfd,
  as in libcamera), read by picamera2's own event thread;
* a CSI camera (``ColorFilterArrangement`` set, raw Bayer sensor modes), so
  picamera2 takes its Raspberry Pi code path: raw stream, sensor configuration;
* frame buffers are whatever picamera2's allocator hands over (file
  descriptors the sensor thread maps and writes, as the ISP writes dma-bufs);
* a sensor thread that fills the main stream of each queued request with a
  synthetic BGR test pattern, paced by the requested ``FrameDurationLimits``.

``rig`` holds the emulated hardware; tests reset it and inject faults through
it (no camera attached, camera busy, sensor stalls).
"""

from __future__ import annotations

import contextlib
import enum
import mmap
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

# ---- value types -------------------------------------------------------------


class Size:
    def __init__(self, width: int = 0, height: int = 0) -> None:
        self.width, self.height = int(width), int(height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


class Rectangle:
    def __init__(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> None:
        self.x, self.y, self.width, self.height = x, y, width, height

    def __str__(self) -> str:
        return f"({self.x}, {self.y})/{self.width}x{self.height}"


class Transform:
    def __init__(
        self, other: Transform | None = None, hflip: int = 0, vflip: int = 0, transpose: int = 0
    ) -> None:
        if other is not None:
            hflip, vflip, transpose = other.hflip, other.vflip, other.transpose
        self.hflip, self.vflip, self.transpose = bool(hflip), bool(vflip), bool(transpose)

    def __str__(self) -> str:
        return f"<Transform hflip={self.hflip} vflip={self.vflip} transpose={self.transpose}>"


class Orientation(enum.Enum):
    Rotate0 = 1
    Rotate0Mirror = 2
    Rotate180 = 3
    Rotate180Mirror = 4
    Rotate90Mirror = 5
    Rotate270 = 6
    Rotate90 = 7
    Rotate270Mirror = 8


class ColorSpace:
    class Primaries(enum.Enum):
        Raw = 0
        Smpte170m = 1
        Rec709 = 2
        Rec2020 = 3

    class TransferFunction(enum.Enum):
        Linear = 0
        Srgb = 1
        Rec709 = 2

    class YcbcrEncoding(enum.Enum):
        Null = 0
        Rec601 = 1
        Rec709 = 2
        Rec2020 = 3

    class Range(enum.Enum):
        Full = 0
        Limited = 1

    def __init__(
        self,
        other: ColorSpace | None = None,
        primaries: Any = None,
        transfer: Any = None,
        encoding: Any = None,
        range_: Any = None,
    ) -> None:
        if other is not None:
            primaries, transfer = other.primaries, other.transferFunction
            encoding, range_ = other.ycbcrEncoding, other.range
        self.primaries, self.transferFunction = primaries, transfer
        self.ycbcrEncoding, self.range = encoding, range_

    @classmethod
    def _make(cls, p: str, t: str, e: str, r: str) -> ColorSpace:
        return cls(
            None,
            cls.Primaries[p],
            cls.TransferFunction[t],
            cls.YcbcrEncoding[e],
            cls.Range[r],
        )

    @classmethod
    def Raw(cls) -> ColorSpace:
        return cls._make("Raw", "Linear", "Null", "Full")

    @classmethod
    def Sycc(cls) -> ColorSpace:
        return cls._make("Rec709", "Srgb", "Rec601", "Full")

    @classmethod
    def Smpte170m(cls) -> ColorSpace:
        return cls._make("Smpte170m", "Rec709", "Rec601", "Limited")

    @classmethod
    def Rec709(cls) -> ColorSpace:
        return cls._make("Rec709", "Rec709", "Rec709", "Limited")

    def __str__(self) -> str:
        return f"{self.primaries.name}/{self.transferFunction.name}/{self.ycbcrEncoding.name}"


class PixelFormat:
    def __init__(self, name: str) -> None:
        self.name = str(name)

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PixelFormat) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


# ---- controls and properties --------------------------------------------------


class ControlType(enum.Enum):
    None_ = 0
    Bool = 1
    Byte = 2
    Integer32 = 3
    Integer64 = 4
    Float = 5
    String = 6
    Rectangle = 7
    Size = 8


class ControlId:
    def __init__(self, name: str, type_: ControlType = ControlType.Integer32) -> None:
        self.name, self.type = name, type_

    def __repr__(self) -> str:
        return f"libcamera.ControlId({self.name})"


@dataclass
class ControlInfo:
    min: Any
    max: Any
    default: Any


class NoiseReductionModeEnum(enum.IntEnum):
    Off = 0
    Fast = 1
    HighQuality = 2
    Minimal = 3
    ZSL = 4


class ColorFilterArrangementEnum(enum.IntEnum):
    RGGB = 0
    GRBG = 1
    GBRG = 2
    BGGR = 3
    RGB = 4
    MONO = 5


controls = SimpleNamespace(
    ExposureTime=ControlId("ExposureTime"),
    ExposureTimeMode=ControlId("ExposureTimeMode"),
    AnalogueGain=ControlId("AnalogueGain", ControlType.Float),
    AnalogueGainMode=ControlId("AnalogueGainMode"),
    FrameDurationLimits=ControlId("FrameDurationLimits", ControlType.Integer64),
    ScalerCrop=ControlId("ScalerCrop", ControlType.Rectangle),
    SensorTimestamp=ControlId("SensorTimestamp", ControlType.Integer64),
    draft=SimpleNamespace(
        NoiseReductionMode=ControlId("NoiseReductionMode"),
        NoiseReductionModeEnum=NoiseReductionModeEnum,
    ),
)

properties = SimpleNamespace(
    Model=ControlId("Model", ControlType.String),
    Location=ControlId("Location"),
    Rotation=ControlId("Rotation"),
    ColorFilterArrangement=ControlId("ColorFilterArrangement"),
    PixelArraySize=ControlId("PixelArraySize", ControlType.Size),
    draft=SimpleNamespace(ColorFilterArrangementEnum=ColorFilterArrangementEnum),
)


# ---- streams and configurations -----------------------------------------------


class StreamRole(enum.Enum):
    Raw = 0
    StillCapture = 1
    VideoRecording = 2
    Viewfinder = 3


class Stream:
    def __init__(self, config: StreamConfiguration) -> None:
        self.configuration = config


class StreamFormats:
    def __init__(self, modes: dict[str, list[tuple[int, int]]]) -> None:
        self._modes = modes

    @property
    def pixel_formats(self) -> list[PixelFormat]:
        return [PixelFormat(name) for name in self._modes]

    def sizes(self, pix: PixelFormat) -> list[Size]:
        return [Size(w, h) for w, h in self._modes[str(pix)]]


# Bytes per pixel of the formats the emulated ISP outputs; raw is CSI-2 packed 10-bit.
_BYTES_PER_PIXEL = {"RGB888": 3.0, "BGR888": 3.0, "XBGR8888": 4.0, "XRGB8888": 4.0}
_RAW_BYTES_PER_PIXEL = 1.25


def _align(n: float, to: int) -> int:
    return (int(n) + to - 1) // to * to


class StreamConfiguration:
    def __init__(self, formats: StreamFormats) -> None:
        self.pixel_format = PixelFormat("YUV420")
        self.size = Size()
        self.stride = 0
        self.frame_size = 0
        self.buffer_count = 1
        self.color_space: ColorSpace | None = None
        self.formats = formats
        self.stream = Stream(self)


class CameraConfiguration:
    class Status(enum.Enum):
        Valid = 0
        Adjusted = 1
        Invalid = 2

    def __init__(self, streams: list[StreamConfiguration]) -> None:
        self._streams = streams
        self.orientation = Orientation.Rotate0
        self.sensor_config: SensorConfiguration | None = None

    def at(self, index: int) -> StreamConfiguration:
        return self._streams[index]

    def __iter__(self) -> Iterator[StreamConfiguration]:
        return iter(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def validate(self) -> CameraConfiguration.Status:
        """Fill in stride and frame size as the Pi ISP would (rows aligned to 64 bytes)."""
        for sc in self._streams:
            name = str(sc.pixel_format)
            if name in _BYTES_PER_PIXEL:
                sc.stride = _align(sc.size.width * _BYTES_PER_PIXEL[name], 64)
            elif "_CSI2P" in name:
                sc.stride = _align(sc.size.width * _RAW_BYTES_PER_PIXEL, 16)
            else:
                return CameraConfiguration.Status.Invalid
            sc.frame_size = sc.stride * sc.size.height
        return CameraConfiguration.Status.Valid


class SensorConfiguration:
    def __init__(self) -> None:
        self.bit_depth = 0
        self.output_size = Size()


# ---- buffers and requests -------------------------------------------------------


class FrameMetadata:
    class Status(enum.Enum):
        Success = 0
        Error = 1
        Cancelled = 2

    def __init__(self, n_planes: int) -> None:
        self.status = FrameMetadata.Status.Error
        self.sequence = 0
        self.timestamp = 0
        self.planes = [SimpleNamespace(bytes_used=0) for _ in range(n_planes)]


class FrameBuffer:
    class Plane:
        def __init__(self) -> None:
            self.fd = -1
            self.offset = 0
            self.length = 0

    def __init__(self, planes: list[FrameBuffer.Plane], cookie: int = 0) -> None:
        self.planes = planes
        self.cookie = cookie
        self.metadata = FrameMetadata(len(planes))


class Request:
    class Status(enum.Enum):
        Pending = 0
        Complete = 1
        Cancelled = 2

    def __init__(self, cookie: int) -> None:
        self.cookie = cookie
        self.status = Request.Status.Pending
        self.buffers: dict[Stream, FrameBuffer] = {}
        self.metadata: dict[ControlId, Any] = {}
        self.controls: dict[ControlId, Any] = {}

    def add_buffer(self, stream: Stream, buffer: FrameBuffer) -> None:
        self.buffers[stream] = buffer

    def set_control(self, cid: ControlId, value: Any) -> None:
        self.controls[cid] = value

    def reuse(self) -> None:
        self.status = Request.Status.Pending
        self.metadata = {}
        self.controls = {}


# ---- the camera ------------------------------------------------------------------

SENSOR_MODES = {"SRGGB10_CSI2P": [(1536, 864), (2304, 1296), (4608, 2592)]}


def synthetic_frame(seq: int, width: int, height: int) -> Any:
    """The frame the emulated sensor delivers: B = frame sequence, G = column, R = row."""
    import numpy as np

    image = np.empty((height, width, 3), np.uint8)
    image[:, :, 0] = seq % 256
    image[:, :, 1] = (np.arange(width) % 256)[None, :]
    image[:, :, 2] = (np.arange(height) % 256)[:, None]
    return image


class Camera:
    def __init__(self, rig: Rig, camera_id: str, model: str) -> None:
        self.rig = rig
        self.id = camera_id
        self.properties: dict[ControlId, Any] = {
            properties.Model: model,
            properties.Location: 2,
            properties.Rotation: 180,
            properties.ColorFilterArrangement: ColorFilterArrangementEnum.RGGB,
            properties.PixelArraySize: Size(4608, 2592),
        }
        self.controls: dict[ControlId, ControlInfo] = {
            controls.FrameDurationLimits: ControlInfo(8333, 1_000_000, 33333),
            controls.ExposureTime: ControlInfo(26, 1_000_000, 20000),
            controls.AnalogueGain: ControlInfo(1.0, 16.0, 1.0),
            controls.draft.NoiseReductionMode: ControlInfo(0, 4, 0),
            controls.ScalerCrop: ControlInfo(
                Rectangle(0, 0, 64, 64), Rectangle(0, 0, 4608, 2592), Rectangle(0, 0, 4608, 2592)
            ),
        }
        self.acquired = False
        self._config: CameraConfiguration | None = None
        self._queue: list[Request] = []
        self._cond = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self.frame_duration_s = 1 / 30
        self.sequence = 0

    def acquire(self) -> None:
        if self.acquired or self.rig.busy:
            raise RuntimeError(f"Failed to acquire camera {self.id}: Device or resource busy")
        self.acquired = True
        self.rig.calls.append("acquire")

    def release(self) -> None:
        if not self.acquired:
            raise RuntimeError(f"Failed to release camera {self.id}")
        self.acquired = False
        self.rig.calls.append("release")

    def generate_configuration(self, roles: list[StreamRole]) -> CameraConfiguration:
        streams = []
        for role in roles:
            if role is StreamRole.Raw:
                sc = StreamConfiguration(StreamFormats(SENSOR_MODES))
                sc.pixel_format = PixelFormat("SRGGB10_CSI2P")
                sc.size = Size(4608, 2592)
            else:
                sc = StreamConfiguration(StreamFormats({"RGB888": [(64, 64), (4608, 2592)]}))
                sc.pixel_format = PixelFormat("XBGR8888")
                sc.size = Size(1280, 720)
            streams.append(sc)
        return CameraConfiguration(streams)

    def configure(self, config: CameraConfiguration) -> int:
        if not self.acquired:
            return -13  # -EACCES, as libcamera answers an unacquired camera
        self._config = config
        self.rig.calls.append("configure")
        return 0

    def start(self, controls_: dict[ControlId, Any] | None = None) -> None:
        if self.rig.fail_start:
            raise RuntimeError("Failed to start camera: Device or resource busy")
        limits = (controls_ or {}).get(controls.FrameDurationLimits)
        if limits is not None:
            self.frame_duration_s = limits[0] / 1e6
        self.rig.calls.append("start")
        self.rig.started_controls = dict(controls_ or {})
        self._running = True
        self._thread = threading.Thread(target=self._sensor, name="stub-sensor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            cancelled, self._queue = self._queue, []
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for req in cancelled:
            req.status = Request.Status.Cancelled
            self.rig.manager.complete(req)
        self.rig.calls.append("stop")

    def create_request(self, cookie: int = 0) -> Request:
        return Request(cookie)

    def queue_request(self, request: Request) -> None:
        with self._cond:
            if not self._running:
                raise RuntimeError("Camera not running")
            self._queue.append(request)
            self._cond.notify_all()

    def _sensor(self) -> None:
        assert self._config is not None
        main = self._config.at(0)
        next_due = time.monotonic()
        while True:
            with self._cond:
                while self._running and (not self._queue or self.rig.stalled.is_set()):
                    self._cond.wait(0.05)
                if not self._running:
                    return
                req = self._queue.pop(0)
            next_due += self.frame_duration_s
            time.sleep(max(0.0, next_due - time.monotonic()))
            if self.rig.stalled.is_set():
                # The frame being read out when the sensor stopped is lost.
                with self._cond:
                    self._queue.insert(0, req)
                continue
            self.sequence += 1
            self._expose(req, main)
            self.rig.manager.complete(req)

    def _expose(self, req: Request, main: StreamConfiguration) -> None:
        import numpy as np

        w, h, stride = main.size.width, main.size.height, main.stride
        for stream, fb in req.buffers.items():
            plane = fb.planes[0]
            if stream is main.stream:
                with mmap.mmap(plane.fd, plane.length) as mm:
                    rows = np.frombuffer(mm, np.uint8).reshape(h, stride)
                    rows[:, : w * 3] = synthetic_frame(self.sequence, w, h).reshape(h, w * 3)
                    del rows
            fb.metadata.status = FrameMetadata.Status.Success
            fb.metadata.sequence = self.sequence
            fb.metadata.timestamp = time.monotonic_ns()
            fb.metadata.planes[0].bytes_used = plane.length
        req.metadata = {
            controls.SensorTimestamp: time.monotonic_ns(),
            controls.ExposureTime: 20000,
        }
        req.status = Request.Status.Complete


class CameraManager:
    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._ready: list[Request] = []
        self._lock = threading.Lock()

    @staticmethod
    def singleton() -> CameraManager:
        return rig.manager

    @property
    def cameras(self) -> list[Camera]:
        return list(self.rig.cameras)

    def get(self, camera_id: str) -> Camera:
        for cam in self.rig.cameras:
            if cam.id == camera_id:
                return cam
        raise RuntimeError(f"no camera {camera_id}")

    find = get

    def complete(self, request: Request) -> None:
        with self._lock:
            self._ready.append(request)
        os.eventfd_write(self.event_fd, 1)

    def get_ready_requests(self) -> list[Request]:
        with contextlib.suppress(BlockingIOError):  # nothing signalled since the last call
            os.eventfd_read(self.event_fd)
        with self._lock:
            ready, self._ready = self._ready, []
        return ready


@dataclass
class Rig:
    """The emulated hardware: which cameras are attached and which faults are injected."""

    cameras: list[Camera] = field(default_factory=list)
    busy: bool = False
    fail_start: bool = False
    stalled: threading.Event = field(default_factory=threading.Event)
    calls: list[str] = field(default_factory=list)
    started_controls: dict[ControlId, Any] = field(default_factory=dict)
    manager: CameraManager = field(init=False)

    def __post_init__(self) -> None:
        self.manager = CameraManager(self)

    def attach(self, model: str = "imx708") -> Camera:
        n = len(self.cameras)
        cam = Camera(self, f"/base/soc/i2c0mux/i2c@{n}/{model}@1a", model)
        self.cameras.append(cam)
        return cam

    def reset(self) -> None:
        self.cameras = []
        self.busy = self.fail_start = False
        self.stalled.clear()
        self.calls = []
        self.started_controls = {}


rig = Rig()
