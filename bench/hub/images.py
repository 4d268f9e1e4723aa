"""One copy of each image however many meters download it.

A fleet update offers the same image to thousands of meters; each `offer_image` call may pass its
own `bytes` object. The library keys images by SHA-256 and hands every transfer the same
`SharedImage`, whose blocks are `memoryview` slices of one buffer. Images nobody downloads any more
are released (weak references), so a long-running bench does not accumulate them.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, field

from bench.codec.ota_file import OtaHeader, parse_ota_header


@dataclass(eq=False)
class SharedImage:
    """An OTA file held once, with the header fields the OTA server advertises."""

    data: bytes
    header: OtaHeader
    sha256: bytes
    view: memoryview = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.view = memoryview(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def manufacturer_code(self) -> int:
        return self.header.manufacturer_code

    @property
    def image_type(self) -> int:
        return self.header.image_type

    @property
    def file_version(self) -> int:
        return self.header.file_version

    def block(self, offset: int, size: int) -> bytes:
        """The bytes of one Image Block Response (a short-lived copy of the slice only)."""
        return self.view[offset : offset + size].tobytes()


class ImageLibrary:
    """Deduplicates offered images by content."""

    def __init__(self) -> None:
        self._images: weakref.WeakValueDictionary[bytes, SharedImage] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def share(self, image: bytes | bytearray | memoryview) -> SharedImage:
        """The shared copy of `image` (parsed once; DecodeError if the OTA header is malformed)."""
        digest = hashlib.sha256(image).digest()
        with self._lock:
            shared = self._images.get(digest)
            if shared is not None:
                return shared
        data = image if isinstance(image, bytes) else bytes(image)
        header = parse_ota_header(data)
        shared = SharedImage(data, header, digest)
        with self._lock:
            return self._images.setdefault(digest, shared)

    def __len__(self) -> int:
        return len(self._images)
