"""What the hub publishes: the public results of its deployments per period."""
