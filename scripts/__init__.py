"""notetune.scripts."""
