"""Load and drills: the event simulator, the embedded tier hierarchy, the demo run."""
