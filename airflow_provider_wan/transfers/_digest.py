"""
The digests of a streamed video (SHA-256, and CRC64NVME when S3 is to check the whole object), computed in a thread
of their own.

hashlib and awscrt release the GIL while they hash a large buffer, so hashing beside the thread that reads the
download lets the two overlap with each other and with boto3's part uploads, instead of adding up in one thread.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

#: Buffers handed to the hashing thread and not hashed yet, at most (``update`` waits beyond that).
DEFAULT_DEPTH = 2


def crc64nvme_function() -> Callable[[bytes, int], int] | None:
    """awscrt's CRC64NVME (``crc64nvme(data, previous)``), or None when awscrt is not installed."""
    try:
        from awscrt.checksums import crc64nvme
    except ImportError:
        return None
    return crc64nvme  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Digests:
    """
    The digests of a whole stream.

    :param size: bytes hashed.
    :param sha256: hex SHA-256.
    :param crc64nvme: CRC64NVME as an integer (None when it was not asked for).
    """

    size: int
    sha256: str
    crc64nvme: int | None = None

    @property
    def crc64nvme_b64(self) -> str | None:
        """The CRC64NVME in S3's form (base64 of the 8 big-endian bytes), or None."""
        if self.crc64nvme is None:
            return None
        return base64.b64encode(self.crc64nvme.to_bytes(8, "big")).decode()


class StreamDigest:
    """
    SHA-256 (and, when asked, CRC64NVME) of the buffers given to :meth:`update`, in order.

    ``update`` hands the buffer over by reference (bytes are immutable: no copy) and returns at once, unless the
    thread is ``depth`` buffers behind; then it waits, so memory stays bounded. :meth:`result` waits for the last
    buffer and returns the digests. :meth:`close` stops the thread without hashing what is still queued (after a
    failure); it is idempotent and safe to call after :meth:`result`.

    :param crc64nvme: also compute CRC64NVME (needs awscrt).
    :param threaded: hash in a thread of its own (False: in the caller's thread, inside ``update``).
    :param depth: buffers queued at most.
    """

    def __init__(self, crc64nvme: bool = False, *, threaded: bool = True, depth: int = DEFAULT_DEPTH) -> None:
        self._sha256 = hashlib.sha256()
        self._crc_fn = crc64nvme_function() if crc64nvme else None
        if crc64nvme and self._crc_fn is None:
            raise RuntimeError("CRC64NVME needs the awscrt package")
        self._crc = 0
        self._threaded = threaded
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max(1, depth))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._discard = False
        self._finished = False
        self._result: Digests | None = None
        self.size = 0

    def update(self, data: bytes) -> None:
        """
        Add the next buffer of the stream.

        :param data: the buffer; it must not change afterwards (bytes, or a read-only view of bytes).
        :raises RuntimeError: after :meth:`result` or :meth:`close`.
        """
        if self._finished:
            raise RuntimeError("the digest is already finished")
        if self._error is not None:
            raise self._error
        if not data:
            return
        self.size += len(data)
        if not self._threaded:
            self._hash(data)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wan-transfer-digest", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def result(self) -> Digests:
        """The digests of everything given to :meth:`update` (waits for the thread to hash the last buffer)."""
        if self._result is None:
            if self._discard:
                raise RuntimeError("the digest was closed before it finished")
            self._stop()
            if self._error is not None:
                raise self._error
            crc = self._crc if self._crc_fn is not None else None
            self._result = Digests(size=self.size, sha256=self._sha256.hexdigest(), crc64nvme=crc)
        return self._result

    def close(self) -> None:
        """Stop the thread; what is still queued is dropped unhashed (nothing to wait for after a failure)."""
        if not self._finished:
            self._discard = True
            self._stop()

    def _stop(self) -> None:
        self._finished = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _hash(self, data: bytes) -> None:
        self._sha256.update(data)
        if self._crc_fn is not None:
            self._crc = self._crc_fn(data, self._crc)

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._discard or self._error is not None:
                continue  # keep taking buffers, so that update() never waits on a queue nobody empties
            try:
                self._hash(data)
            except BaseException as err:  # reported by the next update() or by result()
                self._error = err
