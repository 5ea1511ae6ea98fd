"""Deprecated location of :class:`~sdegen.classifier.NoisyClassifierLoss`, which moved to
:mod:`sdegen.classifier` with the rest of the classifier. Importing it from here works until
sdegen 0.3, with a warning."""

from sdegen._deprecation import moved_names

__all__: list[str] = []

__getattr__ = moved_names("sdegen.losses.classifier", {"NoisyClassifierLoss": "sdegen.classifier"})
