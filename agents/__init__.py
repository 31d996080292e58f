"""notetune.agents."""
