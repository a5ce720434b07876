"""Host tools for the borne charger firmware."""

__version__ = "0.1.0"
