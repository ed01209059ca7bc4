"""The catalog over HTTP: list and read service items (`/api/v1/catalog`)."""
