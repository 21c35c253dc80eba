"""convlab: see what convolution and pooling do to real images."""

__version__ = "0.1.0"
