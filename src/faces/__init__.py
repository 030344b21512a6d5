"""faces: find the faces in your own photos, learn their names, guess the rest."""

__version__ = "0.1.0"
