"""The product's own database: SQLModel tables and the queries that keep money safe."""
