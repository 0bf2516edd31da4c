"""Profiles: the typed model with its checks, the TOML files, and init/password."""
