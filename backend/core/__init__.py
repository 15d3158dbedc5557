"""Settings and logging shared by every process of the service."""
