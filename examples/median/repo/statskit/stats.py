"""Small statistics helpers."""


def mean(values: list[float]) -> float:
    """The arithmetic mean of `values`."""
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)
