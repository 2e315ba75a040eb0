"""Background loops: allocation and outbox delivery. Embedded in ``serve`` or run as ``ordermesh worker``."""
