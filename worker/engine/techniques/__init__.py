"""Model transforms of the technique chain: each takes a Keras model and returns a new one."""
