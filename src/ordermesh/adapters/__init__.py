"""Translators between the domain and the outside world: storage, channels, carriers, ERP."""
