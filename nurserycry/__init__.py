"""NurseryCry: an open-source infant cry detector for home nurseries."""

__version__ = "0.1.0"
