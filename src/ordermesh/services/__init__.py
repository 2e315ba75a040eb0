"""Use cases. Each opens one unit of work, calls the domain, writes outbox events and commits."""
