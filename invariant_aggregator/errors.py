"""The one exception type of the aggregation core."""

__all__ = ["AggregatorError"]


class AggregatorError(ValueError):
    """Raised for every invalid hyperparameter or input of an aggregation rule.

    The message names the problem, the value that was received and the valid range or the
    fix. It subclasses :class:`ValueError`, so ``except ValueError`` also catches it.
    """
