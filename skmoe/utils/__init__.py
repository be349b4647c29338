"""Utilities: estimator discovery and the private-name compatibility layer."""

from .discovery import all_estimators

__all__ = ["all_estimators"]
