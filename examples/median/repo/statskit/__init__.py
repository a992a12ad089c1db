from statskit.stats import mean

__all__ = ["mean"]
