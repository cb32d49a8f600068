"""Redis mode: stateless web nodes and speech workers sharing one Redis (see docs/deploy.md)."""
