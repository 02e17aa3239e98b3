"""Analytics pages in the admin (the Reports section)."""
