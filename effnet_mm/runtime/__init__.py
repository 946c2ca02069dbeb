"""The shared bottom layer of every entry point: config reading and checking (more lands here from main)."""
