"""switchd: a call-centre telephone switch."""

__version__ = "0.1.0"
__all__ = ["__version__"]
