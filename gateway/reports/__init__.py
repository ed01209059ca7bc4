"""Weekly and monthly reports (周报告、月报告) for the district, its streets and communities, by department and item."""
