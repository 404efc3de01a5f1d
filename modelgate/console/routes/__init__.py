"""Console page handlers, one module per area of the product."""
