"""The Feast feature repository of the node features (see README.md)."""
