"""promoter: the CI side of GitOps promotions."""

__version__ = "0.1.0"
