"""HTTP API (FastAPI): parse, authorise, call a service, render. Errors are RFC 9457 problem+json."""
