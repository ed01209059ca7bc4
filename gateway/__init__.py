"""The Litestar application and everything with state: storage, identity, intake, lifecycle, tracking, audit."""
