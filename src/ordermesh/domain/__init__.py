"""Pure business rules. Imports nothing but the standard library (checked by tests/unit/test_layers.py)."""
