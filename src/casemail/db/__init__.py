"""Storage: the tables, the engine, and the migrations that make them."""
