"""What runs on the node: the Jupyter server config, the password hash, the launcher, its child and readiness probe."""
