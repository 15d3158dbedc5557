"""The store: ORM tables, queries and the one metric write path. Returns plain records, never
ORM rows; functions only flush, the caller's unit of work commits."""
