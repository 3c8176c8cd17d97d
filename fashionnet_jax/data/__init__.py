"""DeepFashion annotation parsing and image access (shared by the TFDS builder and tools)."""
