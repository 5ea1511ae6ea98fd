"""Deprecated location of :func:`~sdegen.samplers.tweedie_denoise` and the denoiser protocol, which
moved to :mod:`sdegen.samplers.tweedie` (``sdegen.samplers._denoiser`` is the base of the samplers
written against the denoiser). Importing it from here works until sdegen 0.3, with a warning."""

from sdegen._deprecation import moved_names

__all__: list[str] = []

__getattr__ = moved_names("sdegen.samplers.denoise", {"tweedie_denoise": "sdegen.samplers.tweedie"})
