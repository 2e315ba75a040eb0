"""Sales-channel adapters: one module per marketplace, each speaking the platform's published contract."""
