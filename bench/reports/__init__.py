"""Each benchmark's report: medians over the rounds, time ratios, the printed table and what
the JSON adds to the rounds ``scenarios`` measured."""
