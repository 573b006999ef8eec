"""Example blueprints, each runnable and tested; `blueprints.demo` is what `avtomatika demo` runs."""
