"""Geography: jurisdiction registry (``registry``), ASCII maps (``asciimap``), fixture generator (``generate``)."""
