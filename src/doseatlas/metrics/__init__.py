"""The metric registry and metric computation."""

from doseatlas.metrics.compute import MetricOptions, compute_metrics
from doseatlas.metrics.registry import METRICS, REGISTRY, Metric, render_markdown

__all__ = ["METRICS", "REGISTRY", "Metric", "MetricOptions", "compute_metrics", "render_markdown"]
