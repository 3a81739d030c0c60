"""A body held in memory up to a size, then in an anonymous temporary file.

Invariants:

* At most ``memory_size`` bytes are held in memory; the first write that would
  go over moves everything to a file, and later writes go straight to it.
* The file is ``tempfile.TemporaryFile``: on Linux it has no name at all
  (``O_TMPFILE``), elsewhere it is unlinked at once, so nothing is left on
  disk even if the process is killed. :meth:`Spool.close` releases it and is
  safe to call any number of times.
* A disk that refuses the file (cannot create it, ENOSPC, quota, EFBIG) is a
  :class:`SpoolRefused`, never a half-written body handed on as complete. The
  chunk that was refused is not counted; everything stored before it stays
  readable (``size`` bytes), so a response can still be streamed.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Final

__all__ = ("Spool", "SpoolRefused")

READ_SIZE: Final = 64 * 1024


class SpoolRefused(OSError):
    """The temporary file for a spooled body could not be created or written."""


class Spool:
    """Collects a body; :meth:`reader` replays it from the start."""

    __slots__ = ("_chunks", "_file", "_in_memory", "directory", "memory_size", "size")

    def __init__(self, memory_size: int, directory: str | os.PathLike[str] | None = None) -> None:
        self.memory_size = memory_size
        self.directory = directory
        self.size = 0
        self._chunks: list[bytes] = []
        self._in_memory = 0
        self._file: IO[bytes] | None = None

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._file is None and self._in_memory + len(data) <= self.memory_size:
            self._chunks.append(data)
            self._in_memory += len(data)
            self.size += len(data)
            return
        file = self._file if self._file is not None else self._move_to_file()
        try:
            file.write(data)
            self.size += len(data)
        except OSError as exc:
            raise SpoolRefused(exc.errno, f"cannot write the spooled body: {exc}") from exc

    def _move_to_file(self) -> IO[bytes]:
        """Open the file and move the memory chunks into it; on failure they stay in memory."""
        try:
            file = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115
        except OSError as exc:
            raise SpoolRefused(exc.errno, f"cannot create the spool file: {exc}") from exc
        try:
            file.writelines(self._chunks)
        except OSError as exc:
            file.close()
            raise SpoolRefused(exc.errno, f"cannot write the spool file: {exc}") from exc
        self._file = file
        self._chunks = []
        self._in_memory = 0
        return file

    def reader(self) -> IO[bytes]:
        """A binary file positioned at the start of the body (shares the spool's file)."""
        if self._file is None:
            return io.BytesIO(b"".join(self._chunks))
        try:
            self._file.flush()
            self._file.seek(0)
        except OSError as exc:
            raise SpoolRefused(exc.errno, f"cannot read the spooled body back: {exc}") from exc
        return self._file

    def memory_chunks(self) -> list[bytes]:
        """The chunks held in memory (all of the body unless :attr:`on_disk`)."""
        return self._chunks

    def iter_chunks(self, size: int = READ_SIZE) -> Iterator[bytes]:
        """Replay the body: one joined chunk from memory, or ``size`` pieces from the file."""
        if self._file is None:
            if self._chunks:
                yield b"".join(self._chunks)
            return
        reader = self.reader()
        left = self.size  # a refused write may have left a partial chunk beyond it
        while left > 0:
            chunk = reader.read(min(size, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        file, self._file = self._file, None
        self._chunks = []
        self._in_memory = 0
        if file is not None:
            file.close()


class ChunkReader(io.RawIOBase):
    """A read-only binary file over a list of chunks, copying only when it must.

    ``read(n)`` returns exactly ``min(n, left)`` bytes, like a file; when a
    read lines up with a stored chunk (the usual 64 KiB reads of 64 KiB
    chunks) the chunk itself is returned, so replaying a body held in memory
    costs no copy at all.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._index = 0  # the chunk being read
        self._offset = 0  # position inside it

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise io.UnsupportedOperation("ChunkReader can only seek back to the start")
        self._index = self._offset = 0
        return 0

    def read(self, size: int | None = -1) -> bytes:
        index, chunks = self._index, self._chunks
        if self._offset == 0 and index < len(chunks) and size is not None:
            chunk = chunks[index]
            # The usual read: exactly one whole chunk (or the whole last one), as it is.
            if len(chunk) == size or (0 < len(chunk) < size and index == len(chunks) - 1):
                self._index = index + 1
                return chunk
        parts: list[bytes] = []
        want = -1 if size is None or size < 0 else size
        while want != 0 and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            if self._offset == 0 and (want < 0 or len(chunk) <= want):
                piece = chunk
            else:
                end = len(chunk) if want < 0 else min(len(chunk), self._offset + want)
                piece = chunk[self._offset : end]
            self._offset += len(piece)
            if self._offset >= len(chunk):
                self._index += 1
                self._offset = 0
            parts.append(piece)
            if want > 0:
                want -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        parts: list[bytes] = []
        want = -1 if size is None or size < 0 else size
        while want != 0 and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            newline = chunk.find(b"\n", self._offset)
            end = len(chunk) if newline < 0 else newline + 1
            if want >= 0:
                end = min(end, self._offset + want)
                want -= end - self._offset
            parts.append(chunk[self._offset : end])
            self._offset = end
            if self._offset >= len(chunk):
                self._index += 1
                self._offset = 0
            if newline >= 0 and end == newline + 1:
                break
        return b"".join(parts)
