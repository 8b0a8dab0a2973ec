"""One Powertools router per resource; app.py includes them. Route bodies are thin calls into the layer."""
