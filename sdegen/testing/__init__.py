"""Tools for testing SDEs, samplers and likelihoods against closed-form ground truth.

``sdegen.testing.strategies`` needs hypothesis; the rest needs only torch.
"""
