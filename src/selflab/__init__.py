"""selflab: language models that evaluate, guide and train themselves."""

__version__ = "0.1.0"
