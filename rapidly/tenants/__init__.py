"""Tenants: the companies that use Rapidly, each with its own plugin and settings."""
