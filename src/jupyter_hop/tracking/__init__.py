"""What runs, and how to reach and stop it: connection records, process identity, the inventory, stopping."""
