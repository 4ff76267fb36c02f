"""Staff: the tenant's employees who log in and see their customers' contacts."""
