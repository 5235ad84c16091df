"""Search agents and baselines that run against the RecNAS-Books environments."""
