"""clipsearch: semantic image search over your photo collections."""

__version__ = "0.1.0"
