"""Lectern: document question answering, on AWS or whole on one machine."""

__version__ = "0.1.0"
