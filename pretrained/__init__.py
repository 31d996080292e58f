"""notetune.pretrained."""
