"""The last bytes of a stream fed chunk by chunk: what a Docker exec keeps of its output."""
from __future__ import annotations

from collections import deque


class OutputTail:
    """The last `keep` bytes of a stream, fed chunk by chunk from one thread.

    Chunks are kept whole in a deque and old ones dropped as new ones arrive, so feeding costs
    the same per byte whatever the total: no copy of the kept bytes per chunk."""

    def __init__(self, keep: int):
        self.keep, self.dropped = keep, 0
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def add(self, chunk: bytes) -> None:
        if len(chunk) > self.keep:
            self.dropped += len(chunk) - self.keep
            chunk = chunk[-self.keep :]
        self._chunks.append(chunk)
        self._size += len(chunk)
        while self._size - len(self._chunks[0]) >= self.keep:
            first = self._chunks.popleft()
            self._size -= len(first)
            self.dropped += len(first)

    def finish(self) -> tuple[str, int]:
        """(the kept text, the bytes before it)."""
        data = b"".join(self._chunks)
        dropped = self.dropped + max(0, len(data) - self.keep)
        data = data[-self.keep :]
        if dropped:
            # Start at a line boundary: the cut line's head (a key, a "password=") is gone.
            newline = data.find(b"\n")
            cut = newline + 1 if newline >= 0 else len(data)
            dropped, data = dropped + cut, data[cut:]
        return data.decode("utf-8", "replace"), dropped
