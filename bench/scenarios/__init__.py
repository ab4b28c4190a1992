"""What each benchmark does, step by step, and the raw measurements it takes (into one
result per round); ``reports`` turns them into medians, ratios and tables."""
