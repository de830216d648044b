"""Reading model files safely (headers only, never executing pickles), classifying them, hashing them and sorting them."""
