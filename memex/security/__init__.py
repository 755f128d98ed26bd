"""Who may use a shared store: keys, their checking, and the directory's administration."""
