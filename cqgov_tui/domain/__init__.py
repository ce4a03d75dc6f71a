"""Domain entities, colours and the rules that do not need a store."""
