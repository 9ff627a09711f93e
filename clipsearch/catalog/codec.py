"""How vectors are stored: L2-normalised float16, one blob per image in native byte order."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

# Every float16 bit pattern widened once: a gather through this table is the fastest
# widening numpy has (0.33 ms for 512 vectors of 512, astype 0.5 ms).
_WIDEN = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def encode_vector(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float16).tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored blobs -> an (n, dim) float32 array."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    torch = sys.modules.get("torch")
    if torch is not None:
        # Where torch is loaded anyway it widens float16 with vector instructions: 0.04 ms for
        # a 512-vector re-rank. Importing it only for this would cost seconds.
        # A bytearray: torch wants a writable buffer.
        halfs = torch.frombuffer(bytearray().join(blobs), dtype=torch.float16)
        widened: np.ndarray = halfs.view(len(blobs), dim).float().numpy()
        return widened
    bits = np.frombuffer(b"".join(blobs), dtype=np.uint16)
    return _WIDEN.take(bits).reshape(len(blobs), dim)
