"""hetreg: deep regression with noisy, heteroscedastic or imbalanced labels."""

__version__ = "0.1.0"
