"""RecNAS-Books: neural architecture search for GNN book recommenders as a Gymnasium environment."""

__version__ = "0.1.0"
