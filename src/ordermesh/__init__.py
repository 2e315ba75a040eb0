"""ordermesh: an order management system for brands selling on several marketplaces."""

__version__ = "0.1.0"
