"""Batched dose-response curve fitting (numba kernels), model declarations and model selection."""

from doseatlas.fit.engine import STATUS_CODES, STATUS_NAMES, BatchFit, f_test_pvalue, fit_batch, warmup
from doseatlas.fit.models import MODELS, PARAMS, Model, get_model
from doseatlas.fit.table import cov_columns, curves_columns, fit_curves

__all__ = [
    "MODELS",
    "PARAMS",
    "STATUS_CODES",
    "STATUS_NAMES",
    "BatchFit",
    "Model",
    "cov_columns",
    "curves_columns",
    "f_test_pvalue",
    "fit_batch",
    "fit_curves",
    "get_model",
    "warmup",
]
