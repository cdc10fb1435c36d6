"""Batched dose-response curve fitting (numba kernels), model declarations, model selection and the fit
policies (per-curve refusal; empirical-Bayes shrinkage across cell lines)."""

from doseatlas.fit.engine import STATUS_CODES, STATUS_NAMES, BatchFit, f_test_pvalue, fit_batch, warmup
from doseatlas.fit.models import MODELS, PARAMS, Model, get_model
from doseatlas.fit.shrink import Population, ShrinkOptions, shrink_batch
from doseatlas.fit.table import cov_columns, curves_columns, fit_curves

__all__ = [
    "MODELS",
    "PARAMS",
    "STATUS_CODES",
    "STATUS_NAMES",
    "BatchFit",
    "Model",
    "Population",
    "ShrinkOptions",
    "cov_columns",
    "curves_columns",
    "f_test_pvalue",
    "fit_batch",
    "fit_curves",
    "get_model",
    "shrink_batch",
    "warmup",
]
