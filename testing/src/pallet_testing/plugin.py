"""pytest fixtures shared by every package of the monorepo."""
