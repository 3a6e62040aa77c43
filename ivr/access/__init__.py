"""Who may use the HTTP API: bearer tokens with roles (`tokens`), the rule of each route
(`policy`), the aiohttp middleware that enforces them (`middleware`), and where a server and the
CLI find their tokens (`bootstrap`)."""
