"""The browser side of `ivr serve`: live event stream, agent desktop, wallboard, call search."""
